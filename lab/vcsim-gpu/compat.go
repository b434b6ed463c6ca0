package main

import (
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// wsdlTaskNames maps the simulator's task names to SOAP method names such as CloneVM_Task.
// pyVmomi 9.1 resolves TaskInfo.name as a SOAP method name, and pyVim.task.WaitForTask
// fails on a running task whose name it cannot resolve.
var wsdlTaskNames = map[string]string{
	"AddHost":              "AddHost_Task",
	"CloneVm":              "CloneVM_Task",
	"CreateSnapshot":       "CreateSnapshot_Task",
	"CreateVm":             "CreateVM_Task",
	"CustomizeVm":          "CustomizeVM_Task",
	"Destroy":              "Destroy_Task",
	"EnterMaintenanceMode": "EnterMaintenanceMode_Task",
	"ExitMaintenanceMode":  "ExitMaintenanceMode_Task",
	"PowerOff":             "PowerOffVM_Task",
	"PowerOn":              "PowerOnVM_Task",
	"RebootHost":           "RebootHost_Task",
	"ReconfigVm":           "ReconfigVM_Task",
	"RelocateVm":           "RelocateVM_Task",
	"RemoveSnapshot":       "RemoveSnapshot_Task",
	"Rename":               "Rename_Task",
	"Reset":                "ResetVM_Task",
	"RevertToSnapshot":     "RevertToSnapshot_Task",
	"Suspend":              "SuspendVM_Task",
	"UpgradeVm":            "UpgradeVM_Task",
}

// clientCompatibility adjusts tasks and VMs as the shared registry stores them, so that
// pyVmomi can read them. The registry calls its PutObject for every object it stores.
type clientCompatibility struct{}

func (clientCompatibility) Reference() types.ManagedObjectReference {
	return types.ManagedObjectReference{Type: "LabClientCompatibility", Value: "lab-client-compatibility"}
}

// PutObject runs in the goroutine that creates obj, before obj's reference has reached a
// client. It takes no lock because the creator may hold obj's lock already, as the
// simulator does when it adds a VM to a folder.
func (clientCompatibility) PutObject(_ *simulator.Context, obj mo.Reference) {
	switch object := obj.(type) {
	case *simulator.Task:
		if name, found := wsdlTaskNames[object.Info.Name]; found {
			object.Info.Name = name
		}
	case *simulator.VirtualMachine:
		setRuntimeEnums(&object.Runtime)
		setRuntimeEnums(&object.Summary.Runtime)
	}
}

func (clientCompatibility) UpdateObject(*simulator.Context, mo.Reference, []types.PropertyChange) {}

func (clientCompatibility) RemoveObject(*simulator.Context, types.ManagedObjectReference) {}

// setRuntimeEnums fills the required enum fields that the simulator leaves empty, because
// pyVmomi 9.1 rejects an empty enum value when it decodes runtime or summary. A VM without
// Fault Tolerance or record/replay reports notConfigured and inactive.
func setRuntimeEnums(runtime *types.VirtualMachineRuntimeInfo) {
	if runtime.FaultToleranceState == "" {
		runtime.FaultToleranceState = types.VirtualMachineFaultToleranceStateNotConfigured
	}
	if runtime.RecordReplayState == "" {
		runtime.RecordReplayState = types.VirtualMachineRecordReplayStateInactive
	}
}
