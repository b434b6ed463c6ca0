package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/vmware/govmomi/vim25/types"
)

const (
	nvidiaVendorID   uint16 = 0x10DE
	nvidiaVendorName        = "NVIDIA Corporation"

	// pciClass3DController is the PCI class code (base class 0x03, subclass 0x02) that
	// data-centre GPUs report.
	pciClass3DController int16 = 0x0302

	maxGPUsPerHost = 16
)

// gpuModel is one NVIDIA GPU product that the simulator can install in a host.
type gpuModel struct {
	name        string // value used in --gpus, e.g. "A100-PCIE-80GB"
	deviceID    uint16
	subDeviceID uint16
	deviceName  string
}

// gpuModels holds the device IDs and names from the PCI ID Repository (pci.ids version
// 2026.08.22, vendor 10de).
//
// NOTE: that pci.ids version has no subsystem entries for these boards, so subDeviceID
// is a plausible value with subsystem vendor 0x10DE, not a verified one.
var gpuModels = []gpuModel{
	{name: "T4", deviceID: 0x1EB8, subDeviceID: 0x12A2, deviceName: "TU104GL [Tesla T4]"},
	{name: "A10", deviceID: 0x2236, subDeviceID: 0x1482, deviceName: "GA102GL [A10]"},
	{name: "A30", deviceID: 0x20B7, subDeviceID: 0x1532, deviceName: "GA100GL [A30 PCIe]"},
	{name: "A100-PCIE-40GB", deviceID: 0x20B1, subDeviceID: 0x145F, deviceName: "GA100 [A100 PCIe 40GB]"},
	{name: "A100-PCIE-80GB", deviceID: 0x20B5, subDeviceID: 0x1533, deviceName: "GA100 [A100 PCIe 80GB]"},
	{name: "L4", deviceID: 0x27B8, subDeviceID: 0x16CA, deviceName: "AD104GL [L4]"},
	{name: "L40S", deviceID: 0x26B9, subDeviceID: 0x1851, deviceName: "AD102GL [L40S]"},
	{name: "H100-PCIE", deviceID: 0x2331, subDeviceID: 0x1626, deviceName: "GH100 [H100 PCIe]"},
	{name: "V100-PCIE-32GB", deviceID: 0x1DB6, subDeviceID: 0x124A, deviceName: "GV100GL [Tesla V100 PCIe 32GB]"},
}

// gpuBuses are the PCI bus numbers given to GPUs, in order of installation. The first five
// are typical slots of a two-socket server. None collides with a bus of the stock simulator
// devices (0x00, 0x03, 0x0b, 0x13).
var gpuBuses = [maxGPUsPerHost]uint8{
	0x3b, 0x5e, 0x86, 0xaf, 0xd8, 0x17, 0x31, 0x4b,
	0x65, 0x7f, 0x99, 0xb3, 0xcd, 0xe7, 0x1b, 0x2c,
}

// gpuRequest is one entry of --gpus: a model and how many of it each host gets.
type gpuRequest struct {
	model gpuModel
	count int
}

func gpuModelNames() string {
	names := make([]string, len(gpuModels))
	for i, model := range gpuModels {
		names[i] = model.name
	}

	return strings.Join(names, ", ")
}

func findGPUModel(name string) (gpuModel, bool) {
	for _, model := range gpuModels {
		if strings.EqualFold(model.name, name) {
			return model, true
		}
	}

	return gpuModel{}, false
}

// parseGPUSpec parses a list such as "A100-PCIE-80GB:2,T4:1". An empty value or "none"
// gives hosts without GPUs.
func parseGPUSpec(spec string) ([]gpuRequest, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" || strings.EqualFold(spec, "none") {
		return nil, nil
	}

	var requests []gpuRequest
	total := 0

	for item := range strings.SplitSeq(spec, ",") {
		item = strings.TrimSpace(item)
		name, countText, found := strings.Cut(item, ":")
		if !found {
			return nil, fmt.Errorf("invalid --gpus entry %q: expected MODEL:COUNT, e.g. A100-PCIE-80GB:2", item)
		}

		model, ok := findGPUModel(strings.TrimSpace(name))
		if !ok {
			return nil, fmt.Errorf("unknown GPU model %q in --gpus; known models: %s", name, gpuModelNames())
		}

		count, err := strconv.Atoi(strings.TrimSpace(countText))
		if err != nil || count < 1 {
			return nil, fmt.Errorf("invalid GPU count %q for %s in --gpus: expected a whole number of at least 1", countText, model.name)
		}

		total += count
		if total > maxGPUsPerHost {
			return nil, fmt.Errorf("--gpus %q installs %d GPUs per host; the maximum is %d", spec, total, maxGPUsPerHost)
		}

		requests = append(requests, gpuRequest{model: model, count: count})
	}

	return requests, nil
}

// gpuDevices returns the PCI devices for the requested GPUs, each at its own bus.
func gpuDevices(requests []gpuRequest) []types.HostPciDevice {
	var devices []types.HostPciDevice

	for _, request := range requests {
		for range request.count {
			bus := gpuBuses[len(devices)]
			devices = append(devices, types.HostPciDevice{
				Id:          fmt.Sprintf("0000:%02x:00.0", bus),
				ClassId:     pciClass3DController,
				Bus:         bus,
				Slot:        0,
				Function:    0,
				VendorId:    int16(nvidiaVendorID),
				SubVendorId: int16(nvidiaVendorID),
				VendorName:  nvidiaVendorName,
				DeviceId:    int16(request.model.deviceID),
				SubDeviceId: int16(request.model.subDeviceID),
				DeviceName:  request.model.deviceName,
			})
		}
	}

	return devices
}
