package main

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/vmware/govmomi"
	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/property"
	"github.com/vmware/govmomi/task"
	"github.com/vmware/govmomi/view"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/methods"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

// testPassword is the login password of every test lab. It is no real secret.
const testPassword = "lab-test-password"

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)

	return ctx
}

// startTestLab starts a lab on a free loopback port with the given extra flags.
func startTestLab(t *testing.T, args ...string) *Lab {
	t.Helper()

	args = append([]string{"--listen", "127.0.0.1:0"}, args...)
	opts, err := parseOptions(args, func(string) string { return testPassword }, io.Discard)
	if err != nil {
		t.Fatalf("parseOptions(%q): %v", args, err)
	}

	lab, err := startLab(opts, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("startLab: %v", err)
	}
	t.Cleanup(lab.Close)

	return lab
}

// connect logs in over HTTPS like a real client.
func connect(t *testing.T, lab *Lab) *govmomi.Client {
	t.Helper()
	ctx := testContext(t)

	login := *lab.url
	login.User = url.UserPassword(lab.opts.username, testPassword)

	client, err := govmomi.NewClient(ctx, &login, true)
	if err != nil {
		t.Fatalf("login to %s: %v", lab.url, err)
	}
	t.Cleanup(func() { _ = client.Logout(context.Background()) })

	return client
}

// labRequest calls a /lab/ endpoint with the test login and decodes the JSON reply.
func labRequest(t *testing.T, lab *Lab, method, path string, reply any) int {
	t.Helper()

	return labRequestAs(t, lab, method, path, lab.opts.username, testPassword, reply)
}

func labRequestAs(t *testing.T, lab *Lab, method, path, user, password string, reply any) int {
	t.Helper()

	request, err := http.NewRequest(method, "https://"+lab.url.Host+path, nil)
	if err != nil {
		t.Fatalf("build request %s %s: %v", method, path, err)
	}
	if user != "" {
		token := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
		request.Header.Set("Authorization", "Basic "+token)
	}

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	response, err := client.Do(request)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer response.Body.Close()

	if reply != nil {
		if err := json.NewDecoder(response.Body).Decode(reply); err != nil {
			t.Fatalf("decode reply of %s %s: %v", method, path, err)
		}
	}

	return response.StatusCode
}

func requestCountOf(t *testing.T, lab *Lab) int64 {
	t.Helper()

	var count requestCount
	if status := labRequest(t, lab, http.MethodGet, "/lab/requests", &count); status != http.StatusOK {
		t.Fatalf("GET /lab/requests status = %d, want 200", status)
	}

	return count.Requests
}

func findHost(t *testing.T, client *govmomi.Client, name string) *object.HostSystem {
	t.Helper()

	host, err := find.NewFinder(client.Client).HostSystem(testContext(t), "/dc-lab/host/gpu-cluster/"+name)
	if err != nil {
		t.Fatalf("find host %s: %v", name, err)
	}

	return host
}

// hostPassthrough reads a host's hardware.pciDevice, config.pciPassthruInfo and
// configManager.pciPassthruSystem.
func hostPassthrough(t *testing.T, client *govmomi.Client, host *object.HostSystem) mo.HostSystem {
	t.Helper()

	var props mo.HostSystem
	paths := []string{"name", "hardware.pciDevice", "config.pciPassthruInfo", "configManager.pciPassthruSystem"}
	if err := host.Properties(testContext(t), host.Reference(), paths, &props); err != nil {
		t.Fatalf("read passthrough properties of %s: %v", host.Reference(), err)
	}

	return props
}

func passthruInfo(t *testing.T, props mo.HostSystem, id string) types.HostPciPassthruInfo {
	t.Helper()

	for _, base := range props.Config.PciPassthruInfo {
		if info := base.GetHostPciPassthruInfo(); info.Id == id {
			return *info
		}
	}
	t.Fatalf("host %s has no passthrough info for %s", props.Name, id)

	return types.HostPciPassthruInfo{}
}

// updatePassthru calls UpdatePassthruConfig on the host's HostPciPassthruSystem.
func updatePassthru(t *testing.T, client *govmomi.Client, host *object.HostSystem, configs ...types.HostPciPassthruConfig) error {
	t.Helper()

	props := hostPassthrough(t, client, host)
	request := types.UpdatePassthruConfig{This: *props.ConfigManager.PciPassthruSystem}
	for i := range configs {
		request.Config = append(request.Config, &configs[i])
	}

	_, err := methods.UpdatePassthruConfig(testContext(t), client.Client, &request)

	return err
}

func enableAllGPUs(t *testing.T, lab *Lab, client *govmomi.Client) {
	t.Helper()

	for _, name := range lab.hostNames() {
		host := findHost(t, client, name)
		var configs []types.HostPciPassthruConfig
		for _, device := range gpuDevices(lab.opts.gpus) {
			configs = append(configs, types.HostPciPassthruConfig{Id: device.Id, PassthruEnabled: true})
		}
		if err := updatePassthru(t, client, host, configs...); err != nil {
			t.Fatalf("enable GPUs on %s: %v", name, err)
		}
	}
}

func objectTask(client *govmomi.Client, ref types.ManagedObjectReference) *object.Task {
	return object.NewTask(client.Client, ref)
}

func viewManager(client *govmomi.Client) *view.Manager {
	return view.NewManager(client.Client)
}

// connectAnonymous returns a client that has read the service content but not logged in.
func connectAnonymous(t *testing.T, u *url.URL) *vim25.Client {
	t.Helper()

	client, err := vim25.NewClient(testContext(t), soap.NewClient(u, true))
	if err != nil {
		t.Fatalf("connect to %s without login: %v", u, err)
	}

	return client
}

// taskFault returns the fault of a failed task, or fails the test.
func taskFault(t *testing.T, err error) types.BaseMethodFault {
	t.Helper()

	var taskErr task.Error
	if !errors.As(err, &taskErr) {
		t.Fatalf("error = %v (%T), want a task fault", err, err)
	}

	return taskErr.Fault()
}

// soapFault returns the fault of a failed non-task call, or fails the test.
func soapFault(t *testing.T, err error) types.BaseMethodFault {
	t.Helper()

	if !soap.IsSoapFault(err) {
		t.Fatalf("error = %v (%T), want a SOAP fault", err, err)
	}

	// The client decodes faults as values, but the fault types use pointer receivers.
	fault := reflect.ValueOf(soap.ToSoapFault(err).VimFault())
	if fault.Kind() != reflect.Pointer {
		pointer := reflect.New(fault.Type())
		pointer.Elem().Set(fault)
		fault = pointer
	}

	return fault.Interface().(types.BaseMethodFault)
}

// waitProperty waits until f accepts the changes of ps on obj.
func waitProperty(ctx context.Context, client *govmomi.Client, obj types.ManagedObjectReference, ps []string, f func([]types.PropertyChange) bool) error {
	collector := property.DefaultCollector(client.Client)

	return property.Wait(ctx, collector, obj, ps, f)
}
