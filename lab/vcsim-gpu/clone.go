package main

import (
	"math"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// clone runs in a task that holds the source VM's lock.
func (l *Lab) clone(ctx *simulator.Context, source *simulator.VirtualMachine, req *types.CloneVM_Task) (types.AnyType, types.BaseMethodFault) {
	spec := req.Spec
	config := spec.Config

	var matchers []deviceMatcher
	if config != nil {
		matchers, _ = passthroughRequirements(addedDevices(config.DeviceChange))
	}

	if spec.Location.Host == nil && len(matchers) > 0 {
		spec.Location.Host = l.placeClone(ctx, matchers)
	}

	// The simulator's clone powers on without the passthrough checks and cannot
	// reconfigure a template, so both steps run here after it.
	inner := *req
	inner.Spec = spec
	inner.Spec.PowerOn = false
	inner.Spec.Template = false

	body := source.CloneVMTask(ctx, &inner).(*methods.CloneVM_TaskBody)
	if body.Fault_ != nil {
		return nil, body.Fault_.VimFault().(types.BaseMethodFault)
	}

	result, fault := waitForTask(ctx, body.Res.Returnval)
	if fault != nil {
		return nil, fault
	}

	ref := result.(types.ManagedObjectReference)
	clone, ok := ctx.Map.Get(ref).(*simulator.VirtualMachine)
	if !ok {
		return nil, &types.ManagedObjectNotFound{Obj: ref}
	}

	if fault := completeCloneConfig(ctx, source, clone, config); fault != nil {
		return nil, fault
	}

	if len(matchers) > 0 {
		if system := l.systemFor(clone.Runtime.Host); system != nil {
			ctx.WithLock(system, func() { system.placed[ref] = len(matchers) })
		}
	}

	if spec.Template {
		ctx.WithLock(clone, func() {
			fault = faultOf(clone.MarkAsTemplate(&types.MarkAsTemplate{This: ref}))
		})
		return ref, fault
	}

	if spec.PowerOn {
		ctx.WithLock(clone, func() { fault = l.powerOn(ctx, clone) })
		if fault != nil {
			return nil, fault
		}
	}

	return ref, nil
}

func faultOf(body soap.HasFault) types.BaseMethodFault {
	if fault := body.Fault(); fault != nil {
		return fault.VimFault().(types.BaseMethodFault)
	}

	return nil
}

// completeCloneConfig applies the parts of spec.config that the simulator's clone drops,
// and copies settings a vSphere clone keeps from its source: firmware, boot options,
// annotation, memory allocation and extra config. spec.version is ignored, as vSphere
// uses it only when it creates a VM.
func completeCloneConfig(ctx *simulator.Context, source, clone *simulator.VirtualMachine, config *types.VirtualMachineConfigSpec) types.BaseMethodFault {
	var spec types.VirtualMachineConfigSpec
	if config != nil {
		spec = *config
	}

	// The simulator's clone has applied these already.
	spec.Name = ""
	spec.Version = ""
	spec.Files = nil
	spec.DeviceChange = nil
	spec.Uuid = ""
	spec.InstanceUuid = ""
	spec.NumCPUs = 0
	spec.MemoryMB = 0
	spec.ChangeVersion = ""
	spec.ExtraConfig = missingExtraConfig(source, clone)

	if spec.Firmware == "" {
		spec.Firmware = source.Config.Firmware
	}
	if spec.BootOptions == nil && source.Config.BootOptions != nil {
		options := *source.Config.BootOptions
		spec.BootOptions = &options
	}
	if spec.Annotation == "" {
		spec.Annotation = source.Config.Annotation
	}
	if spec.MemoryReservationLockedToMax == nil {
		spec.MemoryReservationLockedToMax = source.Config.MemoryReservationLockedToMax
	}
	if spec.MemoryAllocation == nil && source.Config.MemoryAllocation != nil {
		allocation := *source.Config.MemoryAllocation
		spec.MemoryAllocation = &allocation
	}

	body := clone.ReconfigVMTask(ctx, &types.ReconfigVM_Task{This: clone.Self, Spec: spec}).(*methods.ReconfigVM_TaskBody)
	_, fault := waitForTask(ctx, body.Res.Returnval)

	return fault
}

// missingExtraConfig returns the source's extra config entries that the clone lacks.
func missingExtraConfig(source, clone *simulator.VirtualMachine) []types.BaseOptionValue {
	present := map[string]bool{}
	for _, option := range clone.Config.ExtraConfig {
		present[option.GetOptionValue().Key] = true
	}

	var missing []types.BaseOptionValue
	for _, option := range source.Config.ExtraConfig {
		value := option.GetOptionValue()
		if !present[value.Key] {
			missing = append(missing, &types.OptionValue{Key: value.Key, Value: value.Value})
		}
	}

	return missing
}

// placeClone replaces DRS initial placement for a clone with passthrough devices that names
// no host. It picks the host with the most matching passthrough-active devices left after
// the devices of VMs already placed there, and the first such host on a tie.
func (l *Lab) placeClone(ctx *simulator.Context, matchers []deviceMatcher) *types.ManagedObjectReference {
	var best *types.ManagedObjectReference
	bestScore := math.MinInt

	for _, system := range l.hosts {
		score := 0
		ctx.WithLock(system, func() {
			score = system.capacity(matchAny(matchers))
			for _, devices := range system.placed {
				score -= devices
			}
		})

		if score > bestScore {
			ref := system.host.Self
			best, bestScore = &ref, score
		}
	}

	return best
}

func matchAny(matchers []deviceMatcher) deviceMatcher {
	return func(device types.HostPciDevice, info *types.HostPciPassthruInfo) bool {
		for _, match := range matchers {
			if match(device, info) {
				return true
			}
		}

		return false
	}
}
