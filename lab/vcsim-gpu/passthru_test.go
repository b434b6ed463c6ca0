package main

import (
	"context"
	"crypto/tls"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

const (
	firstGPU  = "0000:3b:00.0"
	secondGPU = "0000:5e:00.0"
)

func TestUpdatePassthruConfigApplyNow(t *testing.T) {
	lab := startTestLab(t)
	client := connect(t, lab)
	host := findHost(t, client, "esxi-01.lab.local")

	before := passthruInfo(t, hostPassthrough(t, client, host), firstGPU)
	if !before.PassthruCapable || before.PassthruEnabled || before.PassthruActive {
		t.Fatalf("initial GPU state = %+v, want capable, not enabled, not active", before)
	}

	if err := updatePassthru(t, client, host, types.HostPciPassthruConfig{Id: firstGPU, PassthruEnabled: true}); err != nil {
		t.Fatalf("UpdatePassthruConfig: %v", err)
	}

	props := hostPassthrough(t, client, host)
	after := passthruInfo(t, props, firstGPU)
	if !after.PassthruEnabled {
		t.Error("GPU is not enabled after UpdatePassthruConfig")
	}
	if !after.PassthruActive {
		t.Error("GPU is not active although ApplyNow was unset on a host that rebinds without reboot")
	}
	if untouched := passthruInfo(t, props, secondGPU); untouched.PassthruEnabled {
		t.Error("the second GPU was enabled too")
	}

	var system mo.HostPciPassthruSystem
	if err := client.RetrieveOne(testContext(t), *props.ConfigManager.PciPassthruSystem, []string{"pciPassthruInfo"}, &system); err != nil {
		t.Fatalf("read HostPciPassthruSystem: %v", err)
	}
	for _, base := range system.PciPassthruInfo {
		if info := base.GetHostPciPassthruInfo(); info.Id == firstGPU && !info.PassthruActive {
			t.Error("HostPciPassthruSystem.pciPassthruInfo does not show the GPU active")
		}
	}

	other := passthruInfo(t, hostPassthrough(t, client, findHost(t, client, "esxi-02.lab.local")), firstGPU)
	if other.PassthruEnabled {
		t.Error("enabling a GPU on esxi-01 enabled it on esxi-02")
	}
}

func TestUpdatePassthruConfigApplyNowFalse(t *testing.T) {
	lab := startTestLab(t)
	client := connect(t, lab)
	host := findHost(t, client, "esxi-01.lab.local")

	config := types.HostPciPassthruConfig{Id: firstGPU, PassthruEnabled: true, ApplyNow: types.NewBool(false)}
	if err := updatePassthru(t, client, host, config); err != nil {
		t.Fatalf("UpdatePassthruConfig: %v", err)
	}

	info := passthruInfo(t, hostPassthrough(t, client, host), firstGPU)
	if !info.PassthruEnabled || info.PassthruActive {
		t.Fatalf("GPU state = enabled %v active %v, want enabled and waiting for a reboot", info.PassthruEnabled, info.PassthruActive)
	}

	ctx := testContext(t)
	reboot := func(force bool) error {
		response, err := methods.RebootHost_Task(ctx, client.Client, &types.RebootHost_Task{This: host.Reference(), Force: force})
		if err != nil {
			return err
		}
		return objectTask(client, response.Returnval).Wait(ctx)
	}

	err := reboot(false)
	if _, ok := taskFault(t, err).(*types.InvalidState); !ok {
		t.Errorf("RebootHost_Task without force outside maintenance mode: fault %T, want InvalidState", taskFault(t, err))
	}
	if info := passthruInfo(t, hostPassthrough(t, client, host), firstGPU); info.PassthruActive {
		t.Error("a refused reboot activated the GPU")
	}

	if err := reboot(true); err != nil {
		t.Fatalf("RebootHost_Task with force: %v", err)
	}
	if info := passthruInfo(t, hostPassthrough(t, client, host), firstGPU); !info.PassthruActive {
		t.Error("GPU is not active after RebootHost_Task")
	}
}

func TestUpdatePassthruConfigNoRebindNeedsReboot(t *testing.T) {
	lab := startTestLab(t, "--no-rebind", "esxi-02.lab.local")
	client := connect(t, lab)
	host := findHost(t, client, "esxi-02.lab.local")

	config := types.HostPciPassthruConfig{Id: secondGPU, PassthruEnabled: true, ApplyNow: types.NewBool(true)}
	if err := updatePassthru(t, client, host, config); err != nil {
		t.Fatalf("UpdatePassthruConfig: %v", err)
	}

	info := passthruInfo(t, hostPassthrough(t, client, host), secondGPU)
	if !info.PassthruEnabled || info.PassthruActive {
		t.Fatalf("GPU state = enabled %v active %v, want enabled and waiting for a reboot", info.PassthruEnabled, info.PassthruActive)
	}

	var listing struct {
		Hosts []hostStatus `json:"hosts"`
	}
	if status := labRequest(t, lab, http.MethodGet, "/lab/hosts", &listing); status != http.StatusOK {
		t.Fatalf("GET /lab/hosts status = %d", status)
	}
	pending := listing.Hosts[1]
	if pending.Name != "esxi-02.lab.local" || pending.RebindWithoutReboot {
		t.Fatalf("second host = %s rebind %v, want esxi-02.lab.local without rebind", pending.Name, pending.RebindWithoutReboot)
	}
	if device := pending.Devices[1]; device.ID != secondGPU || !device.Enabled || device.Active || !device.RebootPending {
		t.Errorf("listed device = %+v, want %s enabled, inactive, reboot pending", device, secondGPU)
	}
	if !listing.Hosts[0].RebindWithoutReboot {
		t.Error("esxi-01.lab.local is listed without rebind")
	}

	var rebooted hostStatus
	if status := labRequest(t, lab, http.MethodPost, "/lab/hosts/esxi-02.lab.local/reboot", &rebooted); status != http.StatusOK {
		t.Fatalf("POST reboot status = %d", status)
	}
	if device := rebooted.Devices[1]; !device.Active || device.RebootPending {
		t.Errorf("device after reboot = %+v, want active", device)
	}

	if info := passthruInfo(t, hostPassthrough(t, client, host), secondGPU); !info.PassthruActive {
		t.Error("the property collector does not see the GPU active after the reboot")
	}
}

func TestUpdatePassthruConfigUnknownID(t *testing.T) {
	lab := startTestLab(t)
	client := connect(t, lab)
	host := findHost(t, client, "esxi-01.lab.local")

	err := updatePassthru(t, client, host,
		types.HostPciPassthruConfig{Id: firstGPU, PassthruEnabled: true},
		types.HostPciPassthruConfig{Id: "0000:ff:1f.7", PassthruEnabled: true},
	)
	if err == nil {
		t.Fatal("UpdatePassthruConfig accepted an unknown device")
	}

	fault, ok := soapFault(t, err).(*types.InvalidArgument)
	if !ok {
		t.Fatalf("fault = %T, want InvalidArgument", soapFault(t, err))
	}
	if fault.InvalidProperty != "config[1].id" {
		t.Errorf("InvalidProperty = %q, want config[1].id", fault.InvalidProperty)
	}
	if !strings.Contains(err.Error(), "0000:ff:1f.7") {
		t.Errorf("fault message %q does not name the device", err)
	}

	if info := passthruInfo(t, hostPassthrough(t, client, host), firstGPU); info.PassthruEnabled {
		t.Error("the valid entry of a rejected request was applied")
	}
}

func TestUpdatePassthruConfigNotCapable(t *testing.T) {
	lab := startTestLab(t)
	client := connect(t, lab)
	host := findHost(t, client, "esxi-01.lab.local")

	err := updatePassthru(t, client, host, types.HostPciPassthruConfig{Id: "0000:00:00.0", PassthruEnabled: true})
	if err == nil {
		t.Fatal("UpdatePassthruConfig enabled a chipset device")
	}
	if _, ok := soapFault(t, err).(*types.HostConfigFault); !ok {
		t.Errorf("fault = %T, want HostConfigFault", soapFault(t, err))
	}

	disable := types.HostPciPassthruConfig{Id: "0000:00:00.0", PassthruEnabled: false}
	if err := updatePassthru(t, client, host, disable); err != nil {
		t.Errorf("disabling a device that is not capable: %v, want no fault", err)
	}
}

func TestWaitForUpdatesSeesPassthruChange(t *testing.T) {
	lab := startTestLab(t)
	client := connect(t, lab)
	host := findHost(t, client, "esxi-01.lab.local")

	ctx, cancel := context.WithTimeout(testContext(t), 30*time.Second)
	defer cancel()

	// A second session watches, as a separate client process would.
	watcher := connect(t, lab)
	updates := 0
	done := make(chan error, 1)
	go func() {
		done <- waitProperty(ctx, watcher, host.Reference(), []string{"config.pciPassthruInfo"}, func(changes []types.PropertyChange) bool {
			updates++
			for _, change := range changes {
				list, ok := change.Val.(types.ArrayOfHostPciPassthruInfo)
				if !ok {
					continue
				}
				for _, base := range list.HostPciPassthruInfo {
					if info := base.GetHostPciPassthruInfo(); info.Id == firstGPU && info.PassthruActive {
						return true
					}
				}
			}
			return false
		})
	}()

	// The first update carries the current value, so enabling after it proves that the
	// change arrives through WaitForUpdates.
	time.Sleep(200 * time.Millisecond)
	if err := updatePassthru(t, client, host, types.HostPciPassthruConfig{Id: firstGPU, PassthruEnabled: true}); err != nil {
		t.Fatalf("UpdatePassthruConfig: %v", err)
	}

	if err := <-done; err != nil {
		t.Fatalf("WaitForUpdates did not report the GPU active: %v", err)
	}
	if updates < 2 {
		t.Errorf("got %d updates, want the initial value and the change", updates)
	}
}

func TestRequestCounter(t *testing.T) {
	lab := startTestLab(t)
	client := connect(t, lab)

	if status := labRequest(t, lab, http.MethodPost, "/lab/requests/reset", nil); status != http.StatusOK {
		t.Fatalf("POST /lab/requests/reset status = %d", status)
	}
	if count := requestCountOf(t, lab); count != 0 {
		t.Fatalf("count after reset = %d, want 0", count)
	}

	ctx := testContext(t)
	for range 3 {
		if _, err := methods.GetCurrentTime(ctx, client.Client); err != nil {
			t.Fatalf("CurrentTime: %v", err)
		}
	}

	if count := requestCountOf(t, lab); count != 3 {
		t.Errorf("count after 3 SOAP calls = %d, want 3 (lab endpoints must not count)", count)
	}

	if status := labRequest(t, lab, http.MethodPost, "/lab/requests/reset", nil); status != http.StatusOK {
		t.Fatalf("POST /lab/requests/reset status = %d", status)
	}
	if count := requestCountOf(t, lab); count != 0 {
		t.Errorf("count after second reset = %d, want 0", count)
	}
}

func TestLabEndpointsNeedLogin(t *testing.T) {
	lab := startTestLab(t)

	cases := []struct{ name, user, password string }{
		{"no credentials", "", ""},
		{"wrong password", lab.opts.username, testPassword + "x"},
		{"wrong user", "root", testPassword},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"/lab/requests", "/lab/hosts"} {
				if status := labRequestAs(t, lab, http.MethodGet, path, tc.user, tc.password, nil); status != http.StatusUnauthorized {
					t.Errorf("GET %s status = %d, want 401", path, status)
				}
			}
			status := labRequestAs(t, lab, http.MethodPost, "/lab/hosts/esxi-01.lab.local/reboot", tc.user, tc.password, nil)
			if status != http.StatusUnauthorized {
				t.Errorf("POST reboot status = %d, want 401", status)
			}
		})
	}

	if status := labRequest(t, lab, http.MethodPost, "/lab/hosts/esxi-09.lab.local/reboot", nil); status != http.StatusNotFound {
		t.Errorf("reboot of an unknown host: status = %d, want 404", status)
	}
}

func TestSOAPNeedsLogin(t *testing.T) {
	lab := startTestLab(t)
	ctx := testContext(t)

	login := *lab.url
	login.User = nil
	anonymous := connectAnonymous(t, &login)

	request := types.RetrieveProperties{
		This: anonymous.ServiceContent.PropertyCollector,
		SpecSet: []types.PropertyFilterSpec{{
			ObjectSet: []types.ObjectSpec{{Obj: anonymous.ServiceContent.RootFolder}},
			PropSet:   []types.PropertySpec{{Type: "Folder", PathSet: []string{"childEntity"}}},
		}},
	}
	_, err := methods.RetrieveProperties(ctx, anonymous, &request)
	if err == nil {
		t.Fatal("RetrieveProperties without a session succeeded")
	}
	if _, ok := soapFault(t, err).(*types.NotAuthenticated); !ok {
		t.Errorf("fault = %T, want NotAuthenticated", soapFault(t, err))
	}

	wrong := types.Login{This: *anonymous.ServiceContent.SessionManager, UserName: lab.opts.username, Password: "wrong"}
	if _, err := methods.Login(ctx, anonymous, &wrong); err == nil {
		t.Error("Login with a wrong password succeeded")
	}

	token := types.LoginByToken{This: *anonymous.ServiceContent.SessionManager}
	if _, err := methods.LoginByToken(ctx, anonymous, &token); err == nil {
		t.Error("LoginByToken succeeded without a token check")
	}
}

func TestHostDeviceSlicesIndependent(t *testing.T) {
	lab := startTestLab(t, "--hosts", "3", "--gpus", "T4:1,L4:2")
	stock := len(lab.hosts[0].deviceIDs) - 3

	ctx := lab.newContext()
	var first *simulator.HostSystem
	for i, system := range lab.hosts {
		ctx.WithLock(system.host, func() {
			devices := system.host.Hardware.PciDevice
			if len(devices) != stock+3 {
				t.Errorf("%s has %d PCI devices, want %d", system.hostName, len(devices), stock+3)
			}
			if i == 0 {
				first = system.host
				return
			}
			if &devices[0] == &first.Hardware.PciDevice[0] {
				t.Errorf("%s shares its PCI device slice with %s", system.hostName, first.Name)
			}
		})
	}

	ctx.WithLock(first, func() { first.Hardware.PciDevice[0].DeviceName = "changed" })
	for _, system := range lab.hosts[1:] {
		if name := system.host.Hardware.PciDevice[0].DeviceName; name == "changed" {
			t.Errorf("changing esxi-01's device list changed %s's", system.hostName)
		}
	}

	systems := map[types.ManagedObjectReference]bool{}
	for _, system := range lab.hosts {
		ref := *system.host.ConfigManager.PciPassthruSystem
		if systems[ref] {
			t.Errorf("%s shares passthrough system %s", system.hostName, ref)
		}
		systems[ref] = true
		if lab.model.Map().Get(ref) != system {
			t.Errorf("passthrough system %s of %s is not registered", ref, system.hostName)
		}
	}
}

func TestThirtyTwoHostsInOneRetrieve(t *testing.T) {
	lab := startTestLab(t, "--hosts", "32")
	client := connect(t, lab)
	ctx := testContext(t)

	manager := viewManager(client)
	view, err := manager.CreateContainerView(ctx, client.ServiceContent.RootFolder, []string{"HostSystem"}, true)
	if err != nil {
		t.Fatalf("CreateContainerView: %v", err)
	}
	defer func() { _ = view.Destroy(context.Background()) }()

	labRequest(t, lab, http.MethodPost, "/lab/requests/reset", nil)

	var hosts []mo.HostSystem
	paths := []string{"name", "hardware.pciDevice", "config.pciPassthruInfo", "configManager.pciPassthruSystem"}
	if err := view.Retrieve(ctx, []string{"HostSystem"}, paths, &hosts); err != nil {
		t.Fatalf("Retrieve: %v", err)
	}

	if count := requestCountOf(t, lab); count != 1 {
		t.Errorf("reading 32 hosts took %d SOAP requests, want 1", count)
	}
	if len(hosts) != 32 {
		t.Fatalf("got %d hosts, want 32", len(hosts))
	}

	names := map[string]bool{}
	systems := map[types.ManagedObjectReference]bool{}
	for _, host := range hosts {
		names[host.Name] = true
		systems[*host.ConfigManager.PciPassthruSystem] = true

		gpus := 0
		for _, device := range host.Hardware.PciDevice {
			if device.VendorId == int16(nvidiaVendorID) {
				gpus++
			}
		}
		if gpus != 2 {
			t.Errorf("%s has %d GPUs, want 2", host.Name, gpus)
		}
		if len(host.Config.PciPassthruInfo) != len(host.Hardware.PciDevice) {
			t.Errorf("%s has %d passthrough entries for %d devices", host.Name, len(host.Config.PciPassthruInfo), len(host.Hardware.PciDevice))
		}
	}
	for i := range 32 {
		if !names[hostName(i)] {
			t.Errorf("host %s is missing", hostName(i))
		}
	}
	if len(systems) != 32 {
		t.Errorf("32 hosts share %d passthrough systems, want 32", len(systems))
	}
}

func TestThumbprintMatchesServedCertificate(t *testing.T) {
	lab := startTestLab(t)

	connection, err := tls.Dial("tcp", lab.url.Host, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	defer connection.Close()

	served := connection.ConnectionState().PeerCertificates[0]
	if got := sha1Thumbprint(served.Raw); got != lab.thumbprint {
		t.Errorf("served certificate thumbprint %s, printed %s", got, lab.thumbprint)
	}
	if err := served.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("certificate does not name 127.0.0.1: %v", err)
	}
}

func TestTaskNamesAreMethodNames(t *testing.T) {
	lab := startTestLab(t)
	client := connect(t, lab)
	ctx := testContext(t)

	host := findHost(t, client, "esxi-01.lab.local")
	response, err := methods.RebootHost_Task(ctx, client.Client, &types.RebootHost_Task{This: host.Reference(), Force: true})
	if err != nil {
		t.Fatalf("RebootHost_Task: %v", err)
	}

	var task mo.Task
	if err := client.RetrieveOne(ctx, response.Returnval, []string{"info"}, &task); err != nil {
		t.Fatalf("read task info: %v", err)
	}
	if task.Info.Name != "RebootHost_Task" {
		t.Errorf("TaskInfo.name = %q, want RebootHost_Task", task.Info.Name)
	}
}
