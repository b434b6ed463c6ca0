package main

import (
	"net/http"
	"slices"
	"testing"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// a100Device is a Dynamic DirectPath device that accepts an A100 PCIe 80GB, with the IDs
// in the unsigned form TKG renders.
func a100Device() *types.VirtualPCIPassthrough {
	return &types.VirtualPCIPassthrough{VirtualDevice: types.VirtualDevice{
		Key: -200,
		Backing: &types.VirtualPCIPassthroughDynamicBackingInfo{
			AllowedDevice: []types.VirtualPCIPassthroughAllowedDevice{{VendorId: 4318, DeviceId: 8373}},
		},
	}}
}

type cloneOptions struct {
	template     string
	host         string // empty lets the lab place the clone
	lockMemory   bool
	powerOn      bool
	version      string
	withoutGPU   bool
	extraDevices int
}

// cloneWorker clones a template the way a CAPV-like client does and returns the task error.
func cloneWorker(t *testing.T, client *govmomi.Client, name string, options cloneOptions) (*object.VirtualMachine, error) {
	t.Helper()
	ctx := testContext(t)

	finder := find.NewFinder(client.Client)
	template, err := finder.VirtualMachine(ctx, "/dc-lab/vm/"+options.template)
	if err != nil {
		t.Fatalf("find template %s: %v", options.template, err)
	}
	folder, err := finder.Folder(ctx, "/dc-lab/vm")
	if err != nil {
		t.Fatalf("find VM folder: %v", err)
	}
	pool, err := finder.ResourcePool(ctx, "/dc-lab/host/gpu-cluster/Resources")
	if err != nil {
		t.Fatalf("find resource pool: %v", err)
	}

	poolRef := pool.Reference()
	config := &types.VirtualMachineConfigSpec{Version: options.version}
	if options.lockMemory {
		config.MemoryReservationLockedToMax = types.NewBool(true)
	}
	if !options.withoutGPU {
		for i := 0; i <= options.extraDevices; i++ {
			device := a100Device()
			device.Key -= int32(i)
			config.DeviceChange = append(config.DeviceChange, &types.VirtualDeviceConfigSpec{
				Operation: types.VirtualDeviceConfigSpecOperationAdd,
				Device:    device,
			})
		}
	}

	spec := types.VirtualMachineCloneSpec{
		Location: types.VirtualMachineRelocateSpec{Pool: &poolRef},
		PowerOn:  options.powerOn,
		Config:   config,
	}
	if options.host != "" {
		hostRef := findHost(t, client, options.host).Reference()
		spec.Location.Host = &hostRef
	}

	task, err := template.Clone(ctx, folder, name, spec)
	if err != nil {
		t.Fatalf("CloneVM_Task %s: %v", name, err)
	}
	_, err = task.WaitForResult(ctx, nil)

	vm, findErr := finder.VirtualMachine(ctx, "/dc-lab/vm/"+name)
	if findErr != nil {
		t.Fatalf("find clone %s: %v (clone error: %v)", name, findErr, err)
	}

	return vm, err
}

func mustClone(t *testing.T, client *govmomi.Client, name string, options cloneOptions) *object.VirtualMachine {
	t.Helper()

	vm, err := cloneWorker(t, client, name, options)
	if err != nil {
		t.Fatalf("clone %s: %v", name, err)
	}

	return vm
}

func vmProperties(t *testing.T, vm *object.VirtualMachine) mo.VirtualMachine {
	t.Helper()

	var props mo.VirtualMachine
	paths := []string{"name", "config", "runtime"}
	if err := vm.Properties(testContext(t), vm.Reference(), paths, &props); err != nil {
		t.Fatalf("read properties of %s: %v", vm.Reference(), err)
	}

	return props
}

func assignedIDs(props mo.VirtualMachine) []string {
	var ids []string
	for _, device := range props.Config.Hardware.Device {
		if passthrough, ok := device.(*types.VirtualPCIPassthrough); ok {
			if backing, ok := passthrough.Backing.(*types.VirtualPCIPassthroughDynamicBackingInfo); ok && backing.AssignedId != "" {
				ids = append(ids, backing.AssignedId)
			}
		}
	}

	return ids
}

func powerOn(t *testing.T, vm *object.VirtualMachine) error {
	t.Helper()
	ctx := testContext(t)

	task, err := vm.PowerOn(ctx)
	if err != nil {
		t.Fatalf("PowerOnVM_Task: %v", err)
	}

	return task.Wait(ctx)
}

func powerOff(t *testing.T, vm *object.VirtualMachine) {
	t.Helper()
	ctx := testContext(t)

	task, err := vm.PowerOff(ctx)
	if err != nil {
		t.Fatalf("PowerOffVM_Task: %v", err)
	}
	if err := task.Wait(ctx); err != nil {
		t.Fatalf("power off: %v", err)
	}
}

func upgrade(t *testing.T, vm *object.VirtualMachine, version string) error {
	t.Helper()
	ctx := testContext(t)

	task, err := vm.UpgradeVM(ctx, version)
	if err != nil {
		t.Fatalf("UpgradeVM_Task: %v", err)
	}

	return task.Wait(ctx)
}

func hostNameOf(t *testing.T, lab *Lab, props mo.VirtualMachine) string {
	t.Helper()

	system := lab.hostsByRef[*props.Runtime.Host]
	if system == nil {
		t.Fatalf("VM %s runs on unknown host %s", props.Name, props.Runtime.Host)
	}

	return system.hostName
}

func TestCloneKeepsTemplateSettings(t *testing.T) {
	lab := startTestLab(t)
	client := connect(t, lab)

	vm := mustClone(t, client, "worker-1", cloneOptions{template: gpuTemplateName, lockMemory: true, version: "vmx-19"})
	props := vmProperties(t, vm)

	if props.Config.Version != "vmx-17" {
		t.Errorf("clone version = %s, want the template's vmx-17 (spec.version applies only to new VMs)", props.Config.Version)
	}
	if props.Config.Firmware != "efi" {
		t.Errorf("clone firmware = %q, want the template's efi", props.Config.Firmware)
	}
	if props.Config.Hardware.MemoryMB != 128*1024 || props.Config.Hardware.NumCPU != 16 {
		t.Errorf("clone size = %d MB / %d vCPUs, want 131072 MB / 16", props.Config.Hardware.MemoryMB, props.Config.Hardware.NumCPU)
	}
	if locked := props.Config.MemoryReservationLockedToMax; locked == nil || !*locked {
		t.Error("clone does not lock its memory reservation as the clone spec asked")
	}
	if props.Config.Template {
		t.Error("clone is a template")
	}

	passthrough := 0
	for _, device := range props.Config.Hardware.Device {
		if _, ok := device.(*types.VirtualPCIPassthrough); ok {
			passthrough++
		}
	}
	if passthrough != 1 {
		t.Errorf("clone has %d PCI passthrough devices, want 1", passthrough)
	}

	bios := mustClone(t, client, "control-plane-1", cloneOptions{template: biosTemplateName, withoutGPU: true})
	if props := vmProperties(t, bios); props.Config.Version != "vmx-15" || props.Config.Firmware != "bios" {
		t.Errorf("BIOS clone = %s/%s, want vmx-15/bios", props.Config.Version, props.Config.Firmware)
	}
}

func TestPowerOnAssignsFreeActiveGPU(t *testing.T) {
	lab := startTestLab(t)
	client := connect(t, lab)

	first := mustClone(t, client, "worker-1", cloneOptions{template: gpuTemplateName, lockMemory: true})

	err := powerOn(t, first)
	if _, ok := taskFault(t, err).(*types.InsufficientResourcesFault); !ok {
		t.Fatalf("power-on with passthrough not enabled: fault %T, want InsufficientResourcesFault", taskFault(t, err))
	}

	enableAllGPUs(t, lab, client)

	if err := powerOn(t, first); err != nil {
		t.Fatalf("power on worker-1: %v", err)
	}
	props := vmProperties(t, first)
	ids := assignedIDs(props)
	if props.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn {
		t.Errorf("worker-1 power state = %s", props.Runtime.PowerState)
	}
	if len(ids) != 1 || (ids[0] != firstGPU && ids[0] != secondGPU) {
		t.Errorf("worker-1 assigned devices = %v, want one GPU", ids)
	}

	hosts := map[string]int{hostNameOf(t, lab, props): 1}
	for _, name := range []string{"worker-2", "worker-3", "worker-4"} {
		vm := mustClone(t, client, name, cloneOptions{template: gpuTemplateName, lockMemory: true, powerOn: true})
		props := vmProperties(t, vm)
		if len(assignedIDs(props)) != 1 {
			t.Errorf("%s assigned devices = %v, want one GPU", name, assignedIDs(props))
		}
		hosts[hostNameOf(t, lab, props)]++
	}
	if hosts["esxi-01.lab.local"] != 2 || hosts["esxi-02.lab.local"] != 2 {
		t.Errorf("GPU workers per host = %v, want 2 on each host", hosts)
	}

	fifth, err := cloneWorker(t, client, "worker-5", cloneOptions{template: gpuTemplateName, lockMemory: true, powerOn: true})
	if _, ok := taskFault(t, err).(*types.InsufficientResourcesFault); !ok {
		t.Fatalf("fifth GPU worker: fault %T, want InsufficientResourcesFault", taskFault(t, err))
	}
	fifthHost := hostNameOf(t, lab, vmProperties(t, fifth))

	var listing struct {
		Hosts []hostStatus `json:"hosts"`
	}
	labRequest(t, lab, http.MethodGet, "/lab/hosts", &listing)
	for _, host := range listing.Hosts {
		for _, device := range host.Devices {
			if device.AssignedVM == "" {
				t.Errorf("%s %s is not assigned although four workers run", host.Name, device.ID)
			}
		}
	}

	// Power off a worker on the fifth worker's host, which frees a GPU there.
	var victim *object.VirtualMachine
	for _, name := range []string{"worker-1", "worker-2", "worker-3", "worker-4"} {
		vm, err := find.NewFinder(client.Client).VirtualMachine(testContext(t), "/dc-lab/vm/"+name)
		if err != nil {
			t.Fatalf("find %s: %v", name, err)
		}
		if hostNameOf(t, lab, vmProperties(t, vm)) == fifthHost {
			victim = vm
			break
		}
	}
	powerOff(t, victim)
	if ids := assignedIDs(vmProperties(t, victim)); len(ids) != 0 {
		t.Errorf("powered-off worker still has assigned devices %v", ids)
	}

	if err := powerOn(t, fifth); err != nil {
		t.Fatalf("power on worker-5 after a GPU was freed: %v", err)
	}

	lab.hookMu.Lock()
	installed := len(lab.hookCalls)
	lab.hookMu.Unlock()
	if installed != 0 {
		t.Errorf("%d hook objects are still installed after the calls returned", installed)
	}
}

func TestShutdownGuestReleasesGPU(t *testing.T) {
	lab := startTestLab(t, "--hosts", "1", "--gpus", "A100-PCIE-80GB:1")
	client := connect(t, lab)
	enableAllGPUs(t, lab, client)
	ctx := testContext(t)

	options := cloneOptions{template: gpuTemplateName, lockMemory: true, powerOn: true}
	first := mustClone(t, client, "worker-1", options)

	if err := first.ShutdownGuest(ctx); err != nil {
		t.Fatalf("ShutdownGuest: %v", err)
	}
	err := waitProperty(ctx, client, first.Reference(), []string{"runtime.powerState"}, func(changes []types.PropertyChange) bool {
		for _, change := range changes {
			if change.Val == types.VirtualMachinePowerStatePoweredOff {
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("wait for worker-1 to power off: %v", err)
	}

	if _, err := cloneWorker(t, client, "worker-2", options); err != nil {
		t.Errorf("worker-2 did not get the GPU that the guest shutdown of worker-1 freed: %v", err)
	}
}

func TestPowerOnMatchesDeviceID(t *testing.T) {
	lab := startTestLab(t, "--hosts", "1", "--gpus", "T4:2")
	client := connect(t, lab)
	enableAllGPUs(t, lab, client)

	_, err := cloneWorker(t, client, "worker-1", cloneOptions{template: gpuTemplateName, lockMemory: true, powerOn: true})
	if _, ok := taskFault(t, err).(*types.InsufficientResourcesFault); !ok {
		t.Errorf("A100 worker on a T4 host: fault %T, want InsufficientResourcesFault", taskFault(t, err))
	}
}

func TestPowerOnNeedsVmx17ForDynamicDirectPath(t *testing.T) {
	lab := startTestLab(t)
	client := connect(t, lab)
	enableAllGPUs(t, lab, client)

	vm := mustClone(t, client, "old-hardware", cloneOptions{template: biosTemplateName, lockMemory: true})

	err := powerOn(t, vm)
	fault, ok := taskFault(t, err).(*types.DeviceUnsupportedForVmVersion)
	if !ok {
		t.Fatalf("power-on at vmx-15: fault %T, want DeviceUnsupportedForVmVersion", taskFault(t, err))
	}
	if fault.CurrentVersion != "vmx-15" || fault.ExpectedVersion != "vmx-17" {
		t.Errorf("fault versions = %s/%s, want vmx-15/vmx-17", fault.CurrentVersion, fault.ExpectedVersion)
	}

	ctx := testContext(t)
	task, err := vm.Reconfigure(ctx, types.VirtualMachineConfigSpec{Version: "vmx-19"})
	if err != nil {
		t.Fatalf("ReconfigVM_Task: %v", err)
	}
	if err := task.Wait(ctx); err != nil {
		t.Fatalf("reconfigure with spec.version: %v", err)
	}
	if version := vmProperties(t, vm).Config.Version; version != "vmx-15" {
		t.Errorf("ReconfigVM_Task changed the version to %s; spec.version applies only to new VMs", version)
	}

	if err := upgrade(t, vm, "vmx-22"); err == nil {
		t.Error("UpgradeVM_Task to vmx-22 succeeded on ESXi 8.0.2, whose maximum is vmx-21")
	}
	if err := upgrade(t, vm, "vmx-17"); err != nil {
		t.Fatalf("UpgradeVM_Task to vmx-17: %v", err)
	}
	if version := vmProperties(t, vm).Config.Version; version != "vmx-17" {
		t.Fatalf("version after upgrade = %s, want vmx-17", version)
	}

	if err := powerOn(t, vm); err != nil {
		t.Errorf("power-on after the upgrade to vmx-17: %v", err)
	}
	if firmware := vmProperties(t, vm).Config.Firmware; firmware != "bios" {
		t.Errorf("firmware = %q, want the BIOS template's bios", firmware)
	}
}

func TestUpgradeReachesVmx21(t *testing.T) {
	lab := startTestLab(t)
	client := connect(t, lab)

	vm := mustClone(t, client, "worker-1", cloneOptions{template: gpuTemplateName, lockMemory: true})
	for _, version := range []string{"vmx-19", "vmx-21"} {
		if err := upgrade(t, vm, version); err != nil {
			t.Fatalf("UpgradeVM_Task to %s: %v", version, err)
		}
		if got := vmProperties(t, vm).Config.Version; got != version {
			t.Errorf("version = %s, want %s", got, version)
		}
	}
}

func TestPowerOnNeedsFullMemoryReservation(t *testing.T) {
	lab := startTestLab(t)
	client := connect(t, lab)
	enableAllGPUs(t, lab, client)

	vm := mustClone(t, client, "worker-1", cloneOptions{template: gpuTemplateName})
	err := powerOn(t, vm)
	if _, ok := taskFault(t, err).(*types.GenericVmConfigFault); !ok {
		t.Fatalf("power-on without memory reservation: fault %T, want GenericVmConfigFault", taskFault(t, err))
	}

	ctx := testContext(t)
	task, err := vm.Reconfigure(ctx, types.VirtualMachineConfigSpec{MemoryReservationLockedToMax: types.NewBool(true)})
	if err != nil {
		t.Fatalf("ReconfigVM_Task: %v", err)
	}
	if err := task.Wait(ctx); err != nil {
		t.Fatalf("lock memory reservation: %v", err)
	}

	if err := powerOn(t, vm); err != nil {
		t.Errorf("power-on with full memory reservation: %v", err)
	}
}

func TestPowerOnChecksHostMemory(t *testing.T) {
	lab := startTestLab(t, "--host-memory-gib", "200")
	client := connect(t, lab)
	enableAllGPUs(t, lab, client)

	options := cloneOptions{template: gpuTemplateName, lockMemory: true, powerOn: true, host: "esxi-01.lab.local"}
	mustClone(t, client, "worker-1", options)

	_, err := cloneWorker(t, client, "worker-2", options)
	fault, ok := taskFault(t, err).(*types.InsufficientMemoryResourcesFault)
	if !ok {
		t.Fatalf("second 128 GiB worker on a 200 GiB host: fault %T, want InsufficientMemoryResourcesFault", taskFault(t, err))
	}
	if fault.Requested != 128<<30 || fault.Unreserved != 72<<30 {
		t.Errorf("fault requested %d unreserved %d, want %d and %d", fault.Requested, fault.Unreserved, int64(128<<30), int64(72<<30))
	}
}

func TestPoweredOnPassthroughVMRejectsChanges(t *testing.T) {
	lab := startTestLab(t)
	client := connect(t, lab)
	enableAllGPUs(t, lab, client)
	ctx := testContext(t)

	vm := mustClone(t, client, "worker-1", cloneOptions{template: gpuTemplateName, lockMemory: true, powerOn: true})

	task, err := vm.Suspend(ctx)
	if err != nil {
		t.Fatalf("SuspendVM_Task: %v", err)
	}
	if _, ok := taskFault(t, task.Wait(ctx)).(*types.NotSupported); !ok {
		t.Error("suspending a VM with a GPU did not fail with NotSupported")
	}

	add := []types.BaseVirtualDeviceConfigSpec{&types.VirtualDeviceConfigSpec{
		Operation: types.VirtualDeviceConfigSpecOperationAdd,
		Device:    a100Device(),
	}}
	task, err = vm.Reconfigure(ctx, types.VirtualMachineConfigSpec{DeviceChange: add})
	if err != nil {
		t.Fatalf("ReconfigVM_Task: %v", err)
	}
	if _, ok := taskFault(t, task.Wait(ctx)).(*types.InvalidPowerState); !ok {
		t.Error("adding a GPU to a powered-on VM did not fail with InvalidPowerState")
	}

	var listing struct {
		Hosts []hostStatus `json:"hosts"`
	}
	host := hostNameOf(t, lab, vmProperties(t, vm))
	labRequest(t, lab, http.MethodGet, "/lab/hosts", &listing)
	index := slices.IndexFunc(listing.Hosts, func(status hostStatus) bool { return status.Name == host })
	assigned := listing.Hosts[index].Devices[0]
	if assigned.AssignedVM != "worker-1" {
		t.Fatalf("first GPU of %s assigned to %q, want worker-1", host, assigned.AssignedVM)
	}

	disable := types.HostPciPassthruConfig{Id: assigned.ID, PassthruEnabled: false}
	err = updatePassthru(t, client, findHost(t, client, host), disable)
	if _, ok := soapFault(t, err).(*types.HostConfigFault); !ok {
		t.Errorf("disabling a GPU in use: error %v, want HostConfigFault", err)
	}
}

func TestDestroyForgetsPlacement(t *testing.T) {
	lab := startTestLab(t)
	client := connect(t, lab)
	ctx := testContext(t)

	vm := mustClone(t, client, "worker-1", cloneOptions{template: gpuTemplateName, lockMemory: true})
	placed := func() int {
		total := 0
		for _, system := range lab.hosts {
			lab.newContext().WithLock(system, func() { total += len(system.placed) })
		}
		return total
	}
	if placed() != 1 {
		t.Fatalf("placed VMs = %d after one clone, want 1", placed())
	}

	task, err := vm.Destroy(ctx)
	if err != nil {
		t.Fatalf("Destroy_Task: %v", err)
	}
	if err := task.Wait(ctx); err != nil {
		t.Fatalf("destroy: %v", err)
	}
	if placed() != 0 {
		t.Errorf("placed VMs = %d after destroy, want 0", placed())
	}
}

func TestTwoGPUWorkerGetsDistinctDevices(t *testing.T) {
	lab := startTestLab(t, "--hosts", "1")
	client := connect(t, lab)
	enableAllGPUs(t, lab, client)

	vm := mustClone(t, client, "worker-1", cloneOptions{template: gpuTemplateName, lockMemory: true, powerOn: true, extraDevices: 1})

	ids := assignedIDs(vmProperties(t, vm))
	slices.Sort(ids)
	if !slices.Equal(ids, []string{firstGPU, secondGPU}) {
		t.Errorf("assigned devices = %v, want both GPUs", ids)
	}
}

func TestInventoryPaths(t *testing.T) {
	lab := startTestLab(t)
	client := connect(t, lab)
	ctx := testContext(t)
	finder := find.NewFinder(client.Client)

	paths := []string{
		"/dc-lab", "/dc-lab/host/gpu-cluster", "/dc-lab/host/gpu-cluster/Resources",
		"/dc-lab/host/gpu-cluster/esxi-01.lab.local", "/dc-lab/host/gpu-cluster/esxi-02.lab.local",
		"/dc-lab/datastore/datastore1", "/dc-lab/network/VM Network", "/dc-lab/vm",
		"/dc-lab/vm/tkg-ubuntu-2204-gpu", "/dc-lab/vm/tkg-photon-5-bios",
	}
	index := object.NewSearchIndex(client.Client)
	for _, path := range paths {
		ref, err := index.FindByInventoryPath(ctx, path)
		if err != nil || ref == nil {
			t.Errorf("inventory path %s not found (error %v)", path, err)
		}
	}

	for _, template := range templates {
		vm, err := finder.VirtualMachine(ctx, "/dc-lab/vm/"+template.name)
		if err != nil {
			t.Fatalf("find template %s: %v", template.name, err)
		}

		props := vmProperties(t, vm)
		if !props.Config.Template {
			t.Errorf("%s is not marked as template", template.name)
		}
		if props.Config.Version != template.version.String() || props.Config.Firmware != string(template.firmware) {
			t.Errorf("%s = %s/%s, want %s/%s", template.name, props.Config.Version, props.Config.Firmware, template.version, template.firmware)
		}
		if props.Config.Hardware.MemoryMB != int32(template.memoryMB) {
			t.Errorf("%s memory = %d MB, want %d", template.name, props.Config.Hardware.MemoryMB, template.memoryMB)
		}
		if props.Runtime.FaultToleranceState != types.VirtualMachineFaultToleranceStateNotConfigured {
			t.Errorf("%s runtime.faultToleranceState = %q, want notConfigured", template.name, props.Runtime.FaultToleranceState)
		}
	}

	if about := client.ServiceContent.About; about.ApiVersion != "8.0.3.0" {
		t.Errorf("apiVersion = %s, want 8.0.3.0", about.ApiVersion)
	}
}
