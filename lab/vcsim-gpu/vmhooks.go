package main

import (
	"fmt"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// vmHooks wraps a simulator VM for the methods that touch PCI passthrough (see hooks.go).
// The simulator dispatches to it under the VM's lock, as it does for the VM itself. The
// hooks then lock passthrough systems and hosts in that order.
type vmHooks struct {
	*simulator.VirtualMachine

	lab *Lab
}

// Entity hides the embedded VM's Entity method, so that putting the hook into a session
// registry does not write the VM's status fields without the VM's lock.
func (h *vmHooks) Entity() {}

// waitForTask waits for a task that a simulator method returned and returns its fault.
func waitForTask(ctx *simulator.Context, ref types.ManagedObjectReference) (types.AnyType, types.BaseMethodFault) {
	task, ok := ctx.Map.Get(ref).(*simulator.Task)
	if !ok {
		return nil, &types.ManagedObjectNotFound{Obj: ref}
	}

	task.Wait()
	if task.Info.Error != nil {
		return nil, task.Info.Error.Fault
	}

	return task.Info.Result, nil
}

// PowerOnVMTask checks what real vSphere checks before it powers on a VM with PCI
// passthrough devices, then claims the devices on the VM's host.
func (h *vmHooks) PowerOnVMTask(ctx *simulator.Context, req *types.PowerOnVM_Task) soap.HasFault {
	defer h.lab.uninstallHook(ctx, h.Self)

	if h.Config.Template {
		return h.VirtualMachine.PowerOnVMTask(ctx, req)
	}

	task := simulator.CreateTask(h.Self, "powerOn", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		return nil, h.lab.powerOn(ctx, h.VirtualMachine)
	})

	return &methods.PowerOnVM_TaskBody{
		Res: &types.PowerOnVM_TaskResponse{Returnval: task.Run(ctx)},
	}
}

// PowerOffVMTask powers the VM off and releases its devices and memory reservation.
func (h *vmHooks) PowerOffVMTask(ctx *simulator.Context, req *types.PowerOffVM_Task) soap.HasFault {
	defer h.lab.uninstallHook(ctx, h.Self)

	task := simulator.CreateTask(h.Self, "powerOff", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		return nil, h.lab.powerOff(ctx, h.VirtualMachine)
	})

	return &methods.PowerOffVM_TaskBody{
		Res: &types.PowerOffVM_TaskResponse{Returnval: task.Run(ctx)},
	}
}

// ShutdownGuest shuts a VM with passthrough devices down through the power-off path, so
// that its devices are released.
func (h *vmHooks) ShutdownGuest(ctx *simulator.Context, req *types.ShutdownGuest) soap.HasFault {
	defer h.lab.uninstallHook(ctx, h.Self)

	matchers, _ := passthroughRequirements(h.Config.Hardware.Device)
	if len(matchers) == 0 || h.Runtime.PowerState != types.VirtualMachinePowerStatePoweredOn {
		return h.VirtualMachine.ShutdownGuest(ctx, req)
	}

	simulator.CreateTask(h.Self, "shutdownGuest", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		return nil, h.lab.powerOff(ctx, h.VirtualMachine)
	}).Run(ctx)

	return &methods.ShutdownGuestBody{Res: new(types.ShutdownGuestResponse)}
}

// SuspendVMTask rejects suspending a VM with PCI passthrough devices, which vSphere does
// not support.
func (h *vmHooks) SuspendVMTask(ctx *simulator.Context, req *types.SuspendVM_Task) soap.HasFault {
	defer h.lab.uninstallHook(ctx, h.Self)

	matchers, _ := passthroughRequirements(h.Config.Hardware.Device)
	if len(matchers) == 0 {
		return h.VirtualMachine.SuspendVMTask(ctx, req)
	}

	message := fmt.Sprintf("VM %s has PCI passthrough devices and cannot be suspended", h.Name)
	task := simulator.CreateTask(h.Self, "suspend", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		return nil, faultWithMessage(&types.NotSupported{}, message)
	})

	return &methods.SuspendVM_TaskBody{
		Res: &types.SuspendVM_TaskResponse{Returnval: task.Run(ctx)},
	}
}

// ReconfigVMTask ignores spec.version, because the vSphere API uses it only when a VM
// is created (UpgradeVM_Task changes the hardware version), and rejects adding or
// removing PCI passthrough devices while the VM is powered on.
//
// NOTE: the API reference documents spec.version as used only at creation. Whether a
// real vCenter ignores it or rejects it on reconfigure and clone was not checked.
func (h *vmHooks) ReconfigVMTask(ctx *simulator.Context, req *types.ReconfigVM_Task) soap.HasFault {
	defer h.lab.uninstallHook(ctx, h.Self)

	if req.Spec.Version != "" {
		h.lab.log.Info("reconfigure ignores spec.version; use UpgradeVM_Task", "vm", h.Name, "version", req.Spec.Version)
		req.Spec.Version = ""
	}

	poweredOn := h.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn
	if !poweredOn || !changesPassthrough(req.Spec.DeviceChange) {
		return h.VirtualMachine.ReconfigVMTask(ctx, req)
	}

	task := simulator.CreateTask(h.Self, "reconfigVm", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		fault := &types.InvalidPowerState{
			RequestedState: types.VirtualMachinePowerStatePoweredOff,
			ExistingState:  h.Runtime.PowerState,
		}
		message := fmt.Sprintf("VM %s must be powered off to add or remove PCI passthrough devices", h.Name)

		return nil, faultWithMessage(fault, message)
	})

	return &methods.ReconfigVM_TaskBody{
		Res: &types.ReconfigVM_TaskResponse{Returnval: task.Run(ctx)},
	}
}

// DestroyTask destroys the VM and removes its placement record from the host.
func (h *vmHooks) DestroyTask(ctx *simulator.Context, req *types.Destroy_Task) soap.HasFault {
	defer h.lab.uninstallHook(ctx, h.Self)

	vm := h.VirtualMachine
	task := simulator.CreateTask(h.Self, "destroy", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		var host *types.ManagedObjectReference
		if vm.Runtime.Host != nil {
			ref := *vm.Runtime.Host
			host = &ref
		}

		body := vm.DestroyTask(ctx, req).(*methods.Destroy_TaskBody)
		if _, fault := waitForTask(ctx, body.Res.Returnval); fault != nil {
			return nil, fault
		}

		if system := h.lab.systemFor(host); system != nil {
			ctx.WithLock(system, func() { delete(system.placed, vm.Self) })
		}

		return nil, nil
	})

	return &methods.Destroy_TaskBody{
		Res: &types.Destroy_TaskResponse{Returnval: task.Run(ctx)},
	}
}

// CloneVMTask clones through the simulator, then applies the rest of spec.config and the
// source settings that the simulator's clone drops (see clone). It places clones with
// passthrough devices on a host, and it runs the power-on checks when spec.powerOn is set.
func (h *vmHooks) CloneVMTask(ctx *simulator.Context, req *types.CloneVM_Task) soap.HasFault {
	defer h.lab.uninstallHook(ctx, h.Self)

	task := simulator.CreateTask(h.Self, "cloneVm", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		return h.lab.clone(ctx, h.VirtualMachine, req)
	})

	return &methods.CloneVM_TaskBody{
		Res: &types.CloneVM_TaskResponse{Returnval: task.Run(ctx)},
	}
}

// powerOn runs in a task that holds the VM's lock.
func (l *Lab) powerOn(ctx *simulator.Context, vm *simulator.VirtualMachine) types.BaseMethodFault {
	if vm.Runtime.PowerState == types.VirtualMachinePowerStatePoweredOn {
		return runPowerOn(ctx, vm) // fails with the simulator's InvalidPowerState fault
	}

	matchers, dynamic := passthroughRequirements(vm.Config.Hardware.Device)
	memoryMB := memoryReservationMB(vm.Config)

	if len(matchers) > 0 {
		if fault := checkPassthroughConfig(vm, dynamic, memoryMB); fault != nil {
			l.log.Warn("power-on rejected", "vm", vm.Name, "fault", fmt.Sprintf("%T", fault))
			return fault
		}
	}

	system := l.systemFor(vm.Runtime.Host)
	if system == nil {
		return runPowerOn(ctx, vm)
	}

	var claim vmClaim
	var fault types.BaseMethodFault
	ctx.WithLock(system, func() { claim, fault = system.claim(vm, matchers, memoryMB) })
	if fault != nil {
		l.log.Warn("power-on rejected", "vm", vm.Name, "host", system.hostName, "fault", fmt.Sprintf("%T", fault))
		return fault
	}

	if fault := runPowerOn(ctx, vm); fault != nil {
		ctx.WithLock(system, func() { system.release(vm.Self) })
		return fault
	}

	if len(claim.deviceIDs) > 0 {
		ctx.Update(vm, []types.PropertyChange{
			{Name: "config.hardware.device", Val: withAssignedIDs(vm, claim.deviceIDs)},
		})
		l.log.Info("passthrough devices assigned", "vm", vm.Name, "host", system.hostName, "devices", claim.deviceIDs)
	}

	return nil
}

// checkPassthroughConfig applies the VM-side rules for passthrough devices: hardware
// version vmx-17 or later for Dynamic DirectPath, and memory fully reserved.
func checkPassthroughConfig(vm *simulator.VirtualMachine, dynamic bool, memoryMB int64) types.BaseMethodFault {
	if dynamic {
		version, err := types.ParseHardwareVersion(vm.Config.Version)
		if err != nil || version < minDynamicDirectPathVersion {
			message := fmt.Sprintf("VM %s has hardware version %s, but Dynamic DirectPath I/O needs %s or later: upgrade it with UpgradeVM_Task",
				vm.Name, vm.Config.Version, minDynamicDirectPathVersion)
			fault := &types.DeviceUnsupportedForVmVersion{
				CurrentVersion:  vm.Config.Version,
				ExpectedVersion: minDynamicDirectPathVersion.String(),
			}

			return faultWithMessage(fault, message)
		}
	}

	if memoryMB < int64(vm.Config.Hardware.MemoryMB) {
		message := fmt.Sprintf("VM %s reserves %d MB of its %d MB memory, but PCI passthrough needs all of it reserved: set memoryReservationLockedToMax",
			vm.Name, memoryMB, vm.Config.Hardware.MemoryMB)

		return faultWithMessage(&types.GenericVmConfigFault{Reason: message}, message)
	}

	return nil
}

func runPowerOn(ctx *simulator.Context, vm *simulator.VirtualMachine) types.BaseMethodFault {
	body := vm.PowerOnVMTask(ctx, &types.PowerOnVM_Task{This: vm.Self}).(*methods.PowerOnVM_TaskBody)
	if body.Fault_ != nil {
		return body.Fault_.VimFault().(types.BaseMethodFault)
	}

	_, fault := waitForTask(ctx, body.Res.Returnval)

	return fault
}

// powerOff runs in a task that holds the VM's lock.
func (l *Lab) powerOff(ctx *simulator.Context, vm *simulator.VirtualMachine) types.BaseMethodFault {
	body := vm.PowerOffVMTask(ctx, &types.PowerOffVM_Task{This: vm.Self}).(*methods.PowerOffVM_TaskBody)
	if _, fault := waitForTask(ctx, body.Res.Returnval); fault != nil {
		return fault
	}

	system := l.systemFor(vm.Runtime.Host)
	if system == nil {
		return nil
	}

	var hadClaim bool
	ctx.WithLock(system, func() {
		_, hadClaim = system.claims[vm.Self]
		system.release(vm.Self)
	})

	if hadClaim {
		ctx.Update(vm, []types.PropertyChange{
			{Name: "config.hardware.device", Val: withAssignedIDs(vm, nil)},
		})
		l.log.Info("passthrough devices released", "vm", vm.Name, "host", system.hostName)
	}

	return nil
}
