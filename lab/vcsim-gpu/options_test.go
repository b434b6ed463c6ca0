package main

import (
	"io"
	"strings"
	"testing"

	"github.com/vmware/govmomi/simulator/esx"
	"github.com/vmware/govmomi/vim25/types"
)

func parseWith(args []string, password string) (options, error) {
	return parseOptions(args, func(name string) string {
		if name == passwordEnvVar {
			return password
		}
		return ""
	}, io.Discard)
}

func TestParseOptionsDefaults(t *testing.T) {
	opts, err := parseWith(nil, "pw")
	if err != nil {
		t.Fatalf("parseOptions: %v", err)
	}

	if opts.listen != "127.0.0.1:0" {
		t.Errorf("listen = %q, want 127.0.0.1:0", opts.listen)
	}
	if opts.hosts != 2 {
		t.Errorf("hosts = %d, want 2", opts.hosts)
	}
	if len(opts.gpus) != 1 || opts.gpus[0].model.name != "A100-PCIE-80GB" || opts.gpus[0].count != 2 {
		t.Errorf("gpus = %+v, want A100-PCIE-80GB:2", opts.gpus)
	}
	if opts.username != "administrator@vsphere.local" {
		t.Errorf("username = %q", opts.username)
	}
	if opts.password != "pw" {
		t.Errorf("password not read from %s", passwordEnvVar)
	}
	if opts.hostMemoryGiB != 512 {
		t.Errorf("hostMemoryGiB = %d, want 512", opts.hostMemoryGiB)
	}
	if opts.esxiVersion != types.ESXi8020 {
		t.Errorf("esxiVersion = %v, want 8.0.2", opts.esxiVersion)
	}
	if len(opts.noRebind) != 0 {
		t.Errorf("noRebind = %v, want empty", opts.noRebind)
	}
}

func TestParseOptionsRejects(t *testing.T) {
	cases := []struct {
		name     string
		args     []string
		password string
		message  string
	}{
		{"missing password", nil, "", passwordEnvVar},
		{"any address", []string{"--listen", "0.0.0.0:0"}, "pw", "loopback"},
		{"IPv6 any address", []string{"--listen", "[::]:0"}, "pw", "loopback"},
		{"documentation address", []string{"--listen", "192.0.2.10:8443"}, "pw", "loopback"},
		{"host name", []string{"--listen", "localhost:0"}, "pw", "loopback"},
		{"no port", []string{"--listen", "127.0.0.1"}, "pw", "--listen"},
		{"port out of range", []string{"--listen", "127.0.0.1:70000"}, "pw", "port"},
		{"zero hosts", []string{"--hosts", "0"}, "pw", "--hosts"},
		{"too many hosts", []string{"--hosts", "100"}, "pw", "--hosts"},
		{"unknown GPU", []string{"--gpus", "B200:1"}, "pw", "unknown GPU model"},
		{"GPU count zero", []string{"--gpus", "T4:0"}, "pw", "GPU count"},
		{"GPU without count", []string{"--gpus", "T4"}, "pw", "MODEL:COUNT"},
		{"too many GPUs", []string{"--gpus", "T4:9,L4:8"}, "pw", "maximum"},
		{"empty user", []string{"--username", " "}, "pw", "--username"},
		{"zero memory", []string{"--host-memory-gib", "0"}, "pw", "--host-memory-gib"},
		{"ESXi 8.0.3", []string{"--esxi-version", "8.0.3"}, "pw", "--esxi-version"},
		{"ESXi 6.7", []string{"--esxi-version", "6.7"}, "pw", "--esxi-version"},
		{"unknown no-rebind host", []string{"--no-rebind", "esxi-03.lab.local"}, "pw", "esxi-03.lab.local"},
		{"positional argument", []string{"serve"}, "pw", "unexpected argument"},
	}

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseWith(tc.args, tc.password)
			if err == nil {
				t.Fatalf("parseOptions(%q) succeeded, want an error", tc.args)
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error %q does not mention %q", err, tc.message)
			}
		})
	}
}

func TestParseOptionsAccepts(t *testing.T) {
	opts, err := parseWith([]string{
		"--listen", "[::1]:8989", "--hosts", "32", "--gpus", "a100-pcie-80gb:2, T4:1",
		"--esxi-version", "7.0u2", "--no-rebind", "esxi-02.lab.local,esxi-32.lab.local",
	}, "pw")
	if err != nil {
		t.Fatalf("parseOptions: %v", err)
	}

	if opts.listen != "[::1]:8989" {
		t.Errorf("listen = %q, want [::1]:8989", opts.listen)
	}
	if gpuCount(opts.gpus) != 3 {
		t.Errorf("GPU count = %d, want 3", gpuCount(opts.gpus))
	}
	if opts.esxiVersion != types.ESXi7020 || productVersion(opts.esxiVersion) != "7.0.2" {
		t.Errorf("esxiVersion = %v (%s), want 7.0.2", opts.esxiVersion, productVersion(opts.esxiVersion))
	}
	if !opts.noRebind["esxi-02.lab.local"] || !opts.noRebind["esxi-32.lab.local"] || len(opts.noRebind) != 2 {
		t.Errorf("noRebind = %v", opts.noRebind)
	}
}

func TestParseGPUSpecNone(t *testing.T) {
	for _, spec := range []string{"", "none", "NONE"} {
		requests, err := parseGPUSpec(spec)
		if err != nil || len(requests) != 0 {
			t.Errorf("parseGPUSpec(%q) = %v, %v; want no GPUs", spec, requests, err)
		}
	}
}

func TestGPUDevicesUseSignedIDs(t *testing.T) {
	requests, err := parseGPUSpec("A100-PCIE-80GB:1,T4:1")
	if err != nil {
		t.Fatalf("parseGPUSpec: %v", err)
	}

	devices := gpuDevices(requests)
	if len(devices) != 2 {
		t.Fatalf("got %d devices, want 2", len(devices))
	}

	a100 := devices[0]
	if a100.Id != "0000:3b:00.0" || a100.Bus != 0x3b {
		t.Errorf("first GPU at %s bus %#x, want 0000:3b:00.0", a100.Id, a100.Bus)
	}
	if a100.VendorId != 4318 || a100.DeviceId != 0x20B5 || a100.ClassId != 0x0302 {
		t.Errorf("A100 ids = vendor %d device %#x class %#x", a100.VendorId, a100.DeviceId, a100.ClassId)
	}
	if a100.VendorName != "NVIDIA Corporation" || a100.DeviceName != "GA100 [A100 PCIe 80GB]" {
		t.Errorf("A100 names = %q / %q", a100.VendorName, a100.DeviceName)
	}
	if devices[1].Id != "0000:5e:00.0" || devices[1].DeviceName != "TU104GL [Tesla T4]" {
		t.Errorf("second GPU = %s %q", devices[1].Id, devices[1].DeviceName)
	}
}

func TestGPUBusesAreFree(t *testing.T) {
	stock := map[uint8]bool{}
	for _, device := range esx.HostHardwareInfo.PciDevice {
		stock[device.Bus] = true
	}

	seen := map[uint8]bool{}
	for _, bus := range gpuBuses {
		if seen[bus] {
			t.Errorf("bus %#x is used twice", bus)
		}
		if stock[bus] {
			t.Errorf("bus %#x collides with a stock simulator device", bus)
		}
		seen[bus] = true
	}
}

func TestThumbprintFormat(t *testing.T) {
	thumbprint := sha1Thumbprint([]byte("certificate"))
	if len(thumbprint) != 59 || strings.Count(thumbprint, ":") != 19 || strings.ToUpper(thumbprint) != thumbprint {
		t.Errorf("thumbprint %q is not 20 upper-case hex pairs joined by colons", thumbprint)
	}
}
