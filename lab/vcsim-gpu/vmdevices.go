package main

import (
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

// minDynamicDirectPathVersion is the lowest VM hardware version that supports Dynamic
// DirectPath I/O (vmx-17, ESXi 7.0).
const minDynamicDirectPathVersion = types.VMX17

// deviceMatcher reports whether a host PCI device can back one VM passthrough device.
type deviceMatcher func(device types.HostPciDevice, info *types.HostPciPassthruInfo) bool

func sameID16(a int32, b int16) bool {
	return uint16(a) == uint16(b)
}

// dynamicMatcher matches the allowed devices of a Dynamic DirectPath backing. Vendor and
// device IDs are compared as unsigned 16-bit values, so clients may send either the
// signed form the API uses or the unsigned form.
func dynamicMatcher(backing *types.VirtualPCIPassthroughDynamicBackingInfo) deviceMatcher {
	return func(device types.HostPciDevice, info *types.HostPciPassthruInfo) bool {
		if backing.CustomLabel != "" && backing.CustomLabel != info.HardwareLabel {
			return false
		}

		for _, allowed := range backing.AllowedDevice {
			if !sameID16(allowed.VendorId, device.VendorId) || !sameID16(allowed.DeviceId, device.DeviceId) {
				continue
			}
			if allowed.SubVendorId != 0 && !sameID16(allowed.SubVendorId, device.SubVendorId) {
				continue
			}
			if allowed.SubDeviceId != 0 && !sameID16(allowed.SubDeviceId, device.SubDeviceId) {
				continue
			}

			return true
		}

		return false
	}
}

// fixedMatcher matches the one host device named by a DirectPath I/O backing.
func fixedMatcher(backing *types.VirtualPCIPassthroughDeviceBackingInfo) deviceMatcher {
	return func(device types.HostPciDevice, _ *types.HostPciPassthruInfo) bool {
		return device.Id == backing.Id
	}
}

// passthroughRequirements lists a matcher per PCI passthrough device in devices and
// reports whether any of them uses a Dynamic DirectPath backing. Other backings, such as
// vGPU profiles, are not simulated and need nothing.
func passthroughRequirements(devices []types.BaseVirtualDevice) (matchers []deviceMatcher, dynamic bool) {
	for _, device := range devices {
		passthrough, ok := device.(*types.VirtualPCIPassthrough)
		if !ok {
			continue
		}

		switch backing := passthrough.Backing.(type) {
		case *types.VirtualPCIPassthroughDynamicBackingInfo:
			matchers = append(matchers, dynamicMatcher(backing))
			dynamic = true
		case *types.VirtualPCIPassthroughDeviceBackingInfo:
			matchers = append(matchers, fixedMatcher(backing))
		}
	}

	return matchers, dynamic
}

// addedDevices returns the devices that changes add.
func addedDevices(changes []types.BaseVirtualDeviceConfigSpec) []types.BaseVirtualDevice {
	var devices []types.BaseVirtualDevice
	for _, base := range changes {
		change := base.GetVirtualDeviceConfigSpec()
		if change.Operation == types.VirtualDeviceConfigSpecOperationAdd && change.Device != nil {
			devices = append(devices, change.Device)
		}
	}

	return devices
}

func changesPassthrough(changes []types.BaseVirtualDeviceConfigSpec) bool {
	for _, base := range changes {
		if _, ok := base.GetVirtualDeviceConfigSpec().Device.(*types.VirtualPCIPassthrough); ok {
			return true
		}
	}

	return false
}

// memoryReservationMB returns the memory a VM reserves when it powers on.
func memoryReservationMB(config *types.VirtualMachineConfigInfo) int64 {
	if config.MemoryReservationLockedToMax != nil && *config.MemoryReservationLockedToMax {
		return int64(config.Hardware.MemoryMB)
	}
	if config.MemoryAllocation != nil && config.MemoryAllocation.Reservation != nil {
		return *config.MemoryAllocation.Reservation
	}

	return 0
}

// withAssignedIDs returns a copy of the VM's device list in which the Dynamic DirectPath
// backings carry the host device assigned at power-on, or no device when ids is nil.
func withAssignedIDs(vm *simulator.VirtualMachine, ids []string) []types.BaseVirtualDevice {
	devices := make([]types.BaseVirtualDevice, len(vm.Config.Hardware.Device))
	next := 0

	for i, device := range vm.Config.Hardware.Device {
		devices[i] = device

		passthrough, ok := device.(*types.VirtualPCIPassthrough)
		if !ok {
			continue
		}

		switch backing := passthrough.Backing.(type) {
		case *types.VirtualPCIPassthroughDynamicBackingInfo:
			copiedBacking := *backing
			copiedBacking.AssignedId = ""
			if next < len(ids) {
				copiedBacking.AssignedId = ids[next]
			}

			copiedDevice := *passthrough
			copiedDevice.Backing = &copiedBacking
			devices[i] = &copiedDevice
			next++
		case *types.VirtualPCIPassthroughDeviceBackingInfo:
			next++
		}
	}

	return devices
}
