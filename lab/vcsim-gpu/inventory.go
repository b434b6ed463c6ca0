package main

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/units"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/types"
)

// Inventory names. The datacenter gets the simulator's default "VM Network" network.
const (
	datacenterName   = "dc-lab"
	clusterName      = "gpu-cluster"
	datastoreName    = "datastore1"
	networkName      = "VM Network"
	gpuTemplateName  = "tkg-ubuntu-2204-gpu"
	biosTemplateName = "tkg-photon-5-bios"
)

// templateSpec describes one VM template.
type templateSpec struct {
	name     string
	guestID  types.VirtualMachineGuestOsIdentifier
	version  types.HardwareVersion
	firmware types.GuestOsDescriptorFirmwareType
	cpus     int32
	memoryMB int64
	diskGiB  int64
}

// templates: a GPU worker image (EFI, vmx-17, sized like a worker with 16 vCPUs and
// 128 GiB) and a BIOS image sized like a TKG control-plane default (2 vCPUs, 8 GiB).
var templates = []templateSpec{
	{
		name: gpuTemplateName, guestID: types.VirtualMachineGuestOsIdentifierUbuntu64Guest,
		version: types.VMX17, firmware: types.GuestOsDescriptorFirmwareTypeEfi,
		cpus: 16, memoryMB: 128 * 1024, diskGiB: 40,
	},
	{
		name: biosTemplateName, guestID: types.VirtualMachineGuestOsIdentifierVmwarePhoton64Guest,
		version: types.VMX15, firmware: types.GuestOsDescriptorFirmwareTypeBios,
		cpus: 2, memoryMB: 8 * 1024, diskGiB: 40,
	},
}

// buildInventory creates the datacenter, cluster, hosts, datastore and templates through
// an in-process client, then installs the GPUs and passthrough systems.
func (l *Lab) buildInventory(ctx context.Context) error {
	client, err := vim25.NewClient(ctx, l.model.Service)
	if err != nil {
		return fmt.Errorf("connect in-process client: %w", err)
	}

	datacenter, err := object.NewRootFolder(client).CreateDatacenter(ctx, datacenterName)
	if err != nil {
		return fmt.Errorf("create datacenter %s: %w", datacenterName, err)
	}

	folders, err := datacenter.Folders(ctx)
	if err != nil {
		return fmt.Errorf("read folders of %s: %w", datacenterName, err)
	}

	drs := types.ClusterConfigSpecEx{DrsConfig: &types.ClusterDrsConfigInfo{
		Enabled:           types.NewBool(true),
		DefaultVmBehavior: types.DrsBehaviorFullyAutomated,
	}}
	cluster, err := folders.HostFolder.CreateCluster(ctx, clusterName, drs)
	if err != nil {
		return fmt.Errorf("create cluster %s: %w", clusterName, err)
	}

	hosts, err := addHosts(ctx, client, cluster, l.opts.hosts)
	if err != nil {
		return err
	}

	if err := l.createDatastore(ctx, hosts); err != nil {
		return err
	}

	for i, host := range hosts {
		l.installGPUs(host.Reference(), hostName(i))
	}

	return createTemplates(ctx, client, datacenter, folders, cluster, hosts[0])
}

func addHosts(ctx context.Context, client *vim25.Client, cluster *object.ClusterComputeResource, count int) ([]*object.HostSystem, error) {
	hosts := make([]*object.HostSystem, count)

	for i := range count {
		name := hostName(i)
		task, err := cluster.AddHost(ctx, types.HostConnectSpec{HostName: name}, true, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("add host %s: %w", name, err)
		}

		info, err := task.WaitForResult(ctx, nil)
		if err != nil {
			return nil, fmt.Errorf("add host %s: %w", name, err)
		}

		hosts[i] = object.NewHostSystem(client, info.Result.(types.ManagedObjectReference))
	}

	return hosts, nil
}

// createDatastore mounts one datastore, backed by a directory in the simulator's temporary
// home directory, on every host.
func (l *Lab) createDatastore(ctx context.Context, hosts []*object.HostSystem) error {
	home := ""
	for _, setting := range l.model.Map().OptionManager().Setting {
		if option := setting.GetOptionValue(); option.Key == "vcsim.home" {
			home, _ = option.Value.(string)
		}
	}
	if home == "" {
		return fmt.Errorf("the simulator has no vcsim.home directory for datastore %s", datastoreName)
	}

	dir := filepath.Join(home, datacenterName+"-"+datastoreName)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("create directory for datastore %s: %w", datastoreName, err)
	}

	for _, host := range hosts {
		system, err := host.ConfigManager().DatastoreSystem(ctx)
		if err != nil {
			return fmt.Errorf("find datastore system of %s: %w", host.Reference().Value, err)
		}

		if _, err := system.CreateLocalDatastore(ctx, datastoreName, dir); err != nil {
			return fmt.Errorf("mount datastore %s on %s: %w", datastoreName, host.Reference().Value, err)
		}
	}

	return nil
}

// installGPUs gives the host its own PCI device list (the stock devices plus the GPUs),
// its passthrough capability and a HostPciPassthruSystem of its own.
func (l *Lab) installGPUs(ref types.ManagedObjectReference, name string) {
	registry := l.model.Map()
	ctx := l.newContext()
	host := registry.Get(ref).(*simulator.HostSystem)
	rebind := !l.opts.noRebind[name]

	var system *passthroughSystem
	ctx.WithLock(host, func() {
		// The simulator copies the hardware info of its host template shallowly, so the
		// stock device slice is shared by all hosts until it is replaced here.
		devices := slices.Clone(host.Hardware.PciDevice)
		host.Hardware.PciDevice = append(devices, gpuDevices(l.opts.gpus)...)
		host.Capability.DeviceRebindWithoutRebootSupported = types.NewBool(rebind)

		system = newPassthroughSystem(host, rebind, l.log)
		registry.Put(system)

		systemRef := system.Self
		host.ConfigManager.PciPassthruSystem = &systemRef
		host.Config.PciPassthruInfo = copyPassthruInfo(system.PciPassthruInfo)
	})

	l.hosts = append(l.hosts, system)
	l.hostsByRef[ref] = system
	l.hostsByName[name] = system
}

func createTemplates(ctx context.Context, client *vim25.Client, datacenter *object.Datacenter,
	folders *object.DatacenterFolders, cluster *object.ClusterComputeResource, host *object.HostSystem) error {

	finder := find.NewFinder(client, false)
	finder.SetDatacenter(datacenter)

	network, err := finder.Network(ctx, networkName)
	if err != nil {
		return fmt.Errorf("find network %q: %w", networkName, err)
	}

	backing, err := network.EthernetCardBackingInfo(ctx)
	if err != nil {
		return fmt.Errorf("read backing of network %q: %w", networkName, err)
	}

	datastore, err := finder.Datastore(ctx, datastoreName)
	if err != nil {
		return fmt.Errorf("find datastore %s: %w", datastoreName, err)
	}

	pool, err := cluster.ResourcePool(ctx)
	if err != nil {
		return fmt.Errorf("find resource pool of %s: %w", clusterName, err)
	}

	for _, template := range templates {
		spec, err := templateConfig(template, datastore, backing)
		if err != nil {
			return err
		}

		task, err := folders.VmFolder.CreateVM(ctx, spec, pool, host)
		if err != nil {
			return fmt.Errorf("create template %s: %w", template.name, err)
		}

		info, err := task.WaitForResult(ctx, nil)
		if err != nil {
			return fmt.Errorf("create template %s: %w", template.name, err)
		}

		vm := object.NewVirtualMachine(client, info.Result.(types.ManagedObjectReference))
		if err := vm.MarkAsTemplate(ctx); err != nil {
			return fmt.Errorf("mark %s as template: %w", template.name, err)
		}
	}

	return nil
}

func templateConfig(template templateSpec, datastore *object.Datastore, network types.BaseVirtualDeviceBackingInfo) (types.VirtualMachineConfigSpec, error) {
	vmPath := fmt.Sprintf("[%s]", datastore.Name())

	var devices object.VirtualDeviceList
	controller, err := devices.CreateSCSIController("pvscsi")
	if err != nil {
		return types.VirtualMachineConfigSpec{}, fmt.Errorf("create SCSI controller for %s: %w", template.name, err)
	}
	devices = append(devices, controller)

	diskPath := vmPath + " " + path.Join(template.name, "disk1.vmdk")
	disk := devices.CreateDisk(controller.(types.BaseVirtualController), datastore.Reference(), diskPath)
	disk.CapacityInKB = template.diskGiB * int64(units.GB/units.KB)

	nic, err := devices.CreateEthernetCard("vmxnet3", network)
	if err != nil {
		return types.VirtualMachineConfigSpec{}, fmt.Errorf("create network card for %s: %w", template.name, err)
	}
	devices = append(devices, disk, nic)

	changes, err := devices.ConfigSpec(types.VirtualDeviceConfigSpecOperationAdd)
	if err != nil {
		return types.VirtualMachineConfigSpec{}, fmt.Errorf("build devices of %s: %w", template.name, err)
	}

	return types.VirtualMachineConfigSpec{
		Name:         template.name,
		GuestId:      string(template.guestID),
		NumCPUs:      template.cpus,
		MemoryMB:     template.memoryMB,
		Version:      template.version.String(),
		Firmware:     string(template.firmware),
		Files:        &types.VirtualMachineFileInfo{VmPathName: vmPath},
		DeviceChange: changes,
	}, nil
}
