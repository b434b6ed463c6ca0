package main

import (
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// passthroughSystem is the HostPciPassthruSystem managed object of one host. Its
// PciPassthruInfo list is the source of truth for the host's passthrough state, and the
// host's config.pciPassthruInfo property is a published copy.
//
// Locking: every field is guarded by this object's registry lock, which the simulator
// takes while it dispatches a SOAP call to the object. Code that also needs other locks
// takes them in the order virtual machine, passthrough system, host, and never the other
// way round.
type passthroughSystem struct {
	mo.HostPciPassthruSystem

	host      *simulator.HostSystem
	hostName  string
	memoryMB  int64
	rebind    bool // deviceRebindWithoutRebootSupported
	devices   map[string]types.HostPciDevice
	deviceIDs []string // PCI device IDs in host order
	log       *slog.Logger

	// assigned maps a device ID to the powered-on VM that holds it.
	assigned map[string]vmClaim
	// claims maps a powered-on VM to what its power-on reserved on this host.
	claims map[types.ManagedObjectReference]vmClaim
	// placed maps a VM that a clone placed on this host to its number of passthrough
	// devices, for later placement decisions.
	placed map[types.ManagedObjectReference]int
}

// vmClaim is the set of devices and the memory reservation of one powered-on VM on its host.
type vmClaim struct {
	vm        types.ManagedObjectReference
	vmName    string
	deviceIDs []string
	memoryMB  int64
}

func newPassthroughSystem(host *simulator.HostSystem, rebind bool, log *slog.Logger) *passthroughSystem {
	system := &passthroughSystem{
		host:     host,
		hostName: host.Name,
		memoryMB: host.Hardware.MemorySize >> 20,
		rebind:   rebind,
		devices:  map[string]types.HostPciDevice{},
		log:      log,
		assigned: map[string]vmClaim{},
		claims:   map[types.ManagedObjectReference]vmClaim{},
		placed:   map[types.ManagedObjectReference]int{},
	}
	system.Self = types.ManagedObjectReference{Type: "HostPciPassthruSystem", Value: "pciPassthruSystem-" + host.Self.Value}

	for _, device := range host.Hardware.PciDevice {
		system.devices[device.Id] = device
		system.deviceIDs = append(system.deviceIDs, device.Id)
		system.PciPassthruInfo = append(system.PciPassthruInfo, &types.HostPciPassthruInfo{
			Id:              device.Id,
			DependentDevice: device.Id,
			PassthruCapable: device.VendorId == int16(nvidiaVendorID) && device.ClassId == pciClass3DController,
		})
	}

	return system
}

func (s *passthroughSystem) info(id string) *types.HostPciPassthruInfo {
	for _, base := range s.PciPassthruInfo {
		if info := base.GetHostPciPassthruInfo(); info.Id == id {
			return info
		}
	}

	return nil
}

func copyPassthruInfo(list []types.BaseHostPciPassthruInfo) []types.BaseHostPciPassthruInfo {
	copied := make([]types.BaseHostPciPassthruInfo, len(list))
	for i, base := range list {
		info := *base.GetHostPciPassthruInfo()
		copied[i] = &info
	}

	return copied
}

// publish copies the passthrough state into this object's and the host's properties
// through the registry, so property collectors and WaitForUpdates clients see it.
// The caller holds this object's lock.
func (s *passthroughSystem) publish(ctx *simulator.Context) {
	ctx.Update(s, []types.PropertyChange{
		{Name: "pciPassthruInfo", Val: copyPassthruInfo(s.PciPassthruInfo)},
	})

	ctx.WithLock(s.host, func() {
		ctx.Update(s.host, []types.PropertyChange{
			{Name: "config.pciPassthruInfo", Val: copyPassthruInfo(s.PciPassthruInfo)},
		})
	})
}

func faultWithMessage(fault types.BaseMethodFault, message string) types.BaseMethodFault {
	base := fault.GetMethodFault()
	base.FaultMessage = []types.LocalizableMessage{{Key: "vcsim-gpu", Message: message}}
	base.FaultCause = &types.LocalizedMethodFault{
		Fault:            &types.SystemError{Reason: message},
		LocalizedMessage: message,
	}

	return fault
}

// UpdatePassthruConfig implements HostPciPassthruSystem.UpdatePassthruConfig. The request
// is checked as a whole before any entry is applied.
func (s *passthroughSystem) UpdatePassthruConfig(ctx *simulator.Context, req *types.UpdatePassthruConfig) soap.HasFault {
	body := new(methods.UpdatePassthruConfigBody)

	for i, base := range req.Config {
		config := base.GetHostPciPassthruConfig()
		info := s.info(config.Id)

		if info == nil {
			message := fmt.Sprintf("PCI device %q does not exist on host %s", config.Id, s.hostName)
			body.Fault_ = simulator.Fault(message, &types.InvalidArgument{InvalidProperty: fmt.Sprintf("config[%d].id", i)})
			return body
		}

		if config.PassthruEnabled && !info.PassthruCapable {
			message := fmt.Sprintf("PCI device %s on host %s is not capable of passthrough", config.Id, s.hostName)
			body.Fault_ = simulator.Fault(message, faultWithMessage(&types.HostConfigFault{}, message))
			return body
		}

		claim, inUse := s.assigned[config.Id]
		if !config.PassthruEnabled && inUse && s.appliesNow(config) {
			message := fmt.Sprintf("PCI device %s on host %s is in use by powered-on VM %s", config.Id, s.hostName, claim.vmName)
			body.Fault_ = simulator.Fault(message, faultWithMessage(&types.HostConfigFault{}, message))
			return body
		}
	}

	for _, base := range req.Config {
		config := base.GetHostPciPassthruConfig()
		info := s.info(config.Id)

		info.PassthruEnabled = config.PassthruEnabled
		if config.HardwareLabel != "" {
			info.HardwareLabel = config.HardwareLabel
		}

		if s.appliesNow(config) {
			info.PassthruActive = info.PassthruCapable && info.PassthruEnabled
		}

		s.log.Info("passthrough configured", "host", s.hostName, "device", info.Id,
			"enabled", info.PassthruEnabled, "active", info.PassthruActive)
	}

	s.publish(ctx)
	body.Res = new(types.UpdatePassthruConfigResponse)

	return body
}

// appliesNow reports whether config takes effect without a reboot: ApplyNow true or
// unset, on a host that can rebind devices without a reboot.
func (s *passthroughSystem) appliesNow(config *types.HostPciPassthruConfig) bool {
	requested := config.ApplyNow == nil || *config.ApplyNow

	return requested && s.rebind
}

// Refresh implements HostPciPassthruSystem.Refresh by publishing the current state again.
func (s *passthroughSystem) Refresh(ctx *simulator.Context, req *types.Refresh) soap.HasFault {
	s.publish(ctx)

	return &methods.RefreshBody{Res: new(types.RefreshResponse)}
}

// reboot applies pending passthrough changes (active := enabled) as a host reboot does.
// The caller holds this object's lock.
//
// NOTE: a reboot does not power off the host's VMs, so a VM can keep a device that the
// reboot deactivated.
func (s *passthroughSystem) reboot(ctx *simulator.Context) {
	for _, base := range s.PciPassthruInfo {
		info := base.GetHostPciPassthruInfo()
		info.PassthruActive = info.PassthruCapable && info.PassthruEnabled
	}

	s.publish(ctx)

	ctx.WithLock(s.host, func() {
		ctx.Update(s.host, []types.PropertyChange{
			{Name: "runtime.bootTime", Val: time.Now()},
		})
	})

	s.log.Info("host rebooted", "host", s.hostName)
}

// freeDevice returns the first active, unassigned device that matches and is not in
// exclude, or "" when there is none.
func (s *passthroughSystem) freeDevice(match deviceMatcher, exclude []string) string {
	for _, id := range s.deviceIDs {
		info := s.info(id)
		if !info.PassthruActive || slices.Contains(exclude, id) {
			continue
		}
		if _, inUse := s.assigned[id]; inUse {
			continue
		}
		if match(s.devices[id], info) {
			return id
		}
	}

	return ""
}

// capacity counts the active devices that match, assigned or not.
func (s *passthroughSystem) capacity(match deviceMatcher) int {
	count := 0
	for _, id := range s.deviceIDs {
		if info := s.info(id); info.PassthruActive && match(s.devices[id], info) {
			count++
		}
	}

	return count
}

func (s *passthroughSystem) reservedMemoryMB() int64 {
	var total int64
	for _, claim := range s.claims {
		total += claim.memoryMB
	}

	return total
}

// claim reserves devices and memory for a VM that is about to power on.
func (s *passthroughSystem) claim(vm *simulator.VirtualMachine, matchers []deviceMatcher, memoryMB int64) (vmClaim, types.BaseMethodFault) {
	claim := vmClaim{vm: vm.Self, vmName: vm.Name, memoryMB: memoryMB}

	if free := s.memoryMB - s.reservedMemoryMB(); memoryMB > free {
		message := fmt.Sprintf("host %s has %d MB of unreserved memory, but VM %s needs a reservation of %d MB",
			s.hostName, free, vm.Name, memoryMB)
		fault := &types.InsufficientMemoryResourcesFault{Unreserved: free << 20, Requested: memoryMB << 20}

		return vmClaim{}, faultWithMessage(fault, message)
	}

	for i, match := range matchers {
		id := s.freeDevice(match, claim.deviceIDs)
		if id == "" {
			message := fmt.Sprintf("host %s has no free passthrough-active PCI device for device %d of VM %s",
				s.hostName, i, vm.Name)

			return vmClaim{}, faultWithMessage(&types.InsufficientResourcesFault{}, message)
		}
		claim.deviceIDs = append(claim.deviceIDs, id)
	}

	for _, id := range claim.deviceIDs {
		s.assigned[id] = claim
	}
	s.claims[vm.Self] = claim

	return claim, nil
}

// release frees whatever the VM holds on this host.
func (s *passthroughSystem) release(vm types.ManagedObjectReference) {
	claim, ok := s.claims[vm]
	if !ok {
		return
	}

	for _, id := range claim.deviceIDs {
		delete(s.assigned, id)
	}
	delete(s.claims, vm)
}

// hostRebootHook serves HostSystem.RebootHost_Task (see hooks.go). Its Self field is the
// passthrough system's reference, so the simulator locks the passthrough system, not the
// host, while it dispatches, and the reboot can lock the host after it in the lab's lock
// order. The embedded host serves all other calls of the session meanwhile.
type hostRebootHook struct {
	*simulator.HostSystem

	Self   types.ManagedObjectReference
	system *passthroughSystem
	lab    *Lab
}

// Entity hides the embedded host's Entity method, so that putting the hook into a session
// registry does not write the host's status fields without the host's lock.
func (h *hostRebootHook) Entity() {}

// RebootHostTask reboots the host as RebootHost_Task does. Without force the host must be
// in maintenance mode, as on a real host.
func (h *hostRebootHook) RebootHostTask(ctx *simulator.Context, req *types.RebootHost_Task) soap.HasFault {
	defer h.lab.uninstallHook(ctx, h.HostSystem.Self)

	host := h.HostSystem

	var inMaintenance bool
	ctx.WithLock(host, func() { inMaintenance = host.Runtime.InMaintenanceMode })

	var fault types.BaseMethodFault
	if !req.Force && !inMaintenance {
		message := fmt.Sprintf("host %s is not in maintenance mode: enter maintenance mode or set force", h.system.hostName)
		fault = faultWithMessage(&types.InvalidState{}, message)
	} else {
		h.system.reboot(ctx) // the dispatcher holds the passthrough system's lock
	}

	task := simulator.CreateTask(host.Reference(), "rebootHost", func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
		return nil, fault
	})

	return &methods.RebootHost_TaskBody{
		Res: &types.RebootHost_TaskResponse{Returnval: task.Run(ctx)},
	}
}
