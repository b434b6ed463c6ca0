package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/simulator/esx"
	"github.com/vmware/govmomi/vim25/types"
)

// vCenter release the simulator reports. pyVmomi picks the newest API version that both
// sides know, so advertising 8.0.3.0 makes pyVmomi 9.1 use vim.version.v8_0_3_0 instead
// of the simulator's default 6.5.
const (
	vcenterVersion    = "8.0.3"
	vcenterAPIVersion = "8.0.3.0"
)

// Lab is a running simulated vCenter with GPU hosts and the /lab/ control endpoints.
type Lab struct {
	opts       options
	log        *slog.Logger
	model      *simulator.Model
	server     *simulator.Server
	url        *url.URL // without credentials
	thumbprint string
	requests   atomic.Int64

	hosts       []*passthroughSystem // in host name order
	hostsByRef  map[types.ManagedObjectReference]*passthroughSystem
	hostsByName map[string]*passthroughSystem

	hookMu    sync.Mutex
	hookCalls map[installedHook]int // calls in progress per installed hook
}

// startLab builds the inventory and starts serving HTTPS on opts.listen.
func startLab(opts options, log *slog.Logger) (*Lab, error) {
	lab := &Lab{
		opts:        opts,
		log:         log,
		hostsByRef:  map[types.ManagedObjectReference]*passthroughSystem{},
		hostsByName: map[string]*passthroughSystem{},
		hookCalls:   map[installedHook]int{},
	}

	configureHostTemplate(opts)

	model := simulator.VPX()
	model.Datacenter = 0 // the inventory is built below, with the lab's names
	model.Autostart = false
	about := &model.ServiceContent.About
	about.Version = vcenterVersion
	about.ApiVersion = vcenterAPIVersion
	about.FullName = fmt.Sprintf("VMware vCenter Server %s (govmomi simulator, tkg-gpu lab)", vcenterVersion)
	about.LicenseProductVersion = "8.0"

	if err := model.Create(); err != nil {
		return nil, fmt.Errorf("create simulator model: %w", err)
	}
	lab.model = model
	model.Map().AddHandler(clientCompatibility{})

	if err := lab.buildInventory(context.Background()); err != nil {
		model.Remove()
		return nil, err
	}

	model.Map().Handler = lab.route

	if err := lab.serve(); err != nil {
		model.Remove()
		return nil, err
	}

	return lab, nil
}

// configureHostTemplate sets the ESXi version and memory on the simulator's global host
// template, because the cluster's environment browser reads the version when a host is
// added.
func configureHostTemplate(opts options) {
	product := &esx.HostConfigInfo.Product
	product.Version = productVersion(opts.esxiVersion)
	product.ApiVersion = product.Version + ".0"
	product.LicenseProductVersion = product.Version
	// NOTE: the build number stays the simulator's 8.0.2 build for every version.
	product.FullName = fmt.Sprintf("VMware ESXi %s build-%s", product.Version, product.Build)

	memory := int64(opts.hostMemoryGiB) << 30
	esx.HostHardwareInfo.MemorySize = memory
	esx.HostSystem.Summary.Hardware.MemorySize = memory
}

// newContext returns a simulator context with its own lock identity, for work that does
// not come from a SOAP request.
func (l *Lab) newContext() *simulator.Context {
	ctx := *l.model.Service.Context
	ctx.Context = context.Background()

	return &ctx
}

func (l *Lab) systemFor(host *types.ManagedObjectReference) *passthroughSystem {
	if host == nil {
		return nil
	}

	return l.hostsByRef[*host]
}

func (l *Lab) serve() error {
	listenIP := net.ParseIP(mustHost(l.opts.listen))
	certificate, err := newSelfSignedCertificate(listenIP)
	if err != nil {
		return err
	}

	service := l.model.Service
	service.TLS = &tls.Config{Certificates: []tls.Certificate{certificate}, MinVersion: tls.VersionTLS12}
	service.Listen = &url.URL{Host: l.opts.listen, User: url.UserPassword(l.opts.username, l.opts.password)}
	service.ServeMux = http.NewServeMux()
	l.registerEndpoints(service.ServeMux)

	server, err := startServer(service)
	if err != nil {
		return err
	}

	l.server = server
	l.url = &url.URL{Scheme: server.URL.Scheme, Host: server.URL.Host, Path: server.URL.Path}
	l.thumbprint = sha1Thumbprint(certificate.Certificate[0])

	return nil
}

// startServer turns the simulator's panic on a listen error into an error.
func startServer(service *simulator.Service) (server *simulator.Server, err error) {
	defer func() {
		if recovered := recover(); recovered != nil {
			err = fmt.Errorf("start HTTPS server on %s: %v", service.Listen.Host, recovered)
		}
	}()

	return service.NewServer(), nil
}

func mustHost(address string) string {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		panic(fmt.Sprintf("listen address %q was not validated: %v", address, err))
	}

	return host
}

// Close stops serving and removes the simulator's temporary files.
func (l *Lab) Close() {
	l.server.Close()
	l.model.Remove()
}

// hostNames returns the host names in order.
func (l *Lab) hostNames() []string {
	names := make([]string, len(l.hosts))
	for i, system := range l.hosts {
		names[i] = system.hostName
	}

	return names
}
