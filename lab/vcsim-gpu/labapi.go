package main

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
)

// registerEndpoints adds the SOAP request counter and the /lab/ control endpoints to mux.
// The simulator registers its own handler for /sdk on the same mux, and the POST patterns
// here take precedence because they are more specific.
func (l *Lab) registerEndpoints(mux *http.ServeMux) {
	mux.HandleFunc("POST /sdk", l.serveCountedSDK)
	mux.HandleFunc("POST /sdk/vimService", l.serveCountedSDK)

	mux.Handle("GET /lab/requests", l.requireLogin(l.serveRequestCount))
	mux.Handle("POST /lab/requests/reset", l.requireLogin(l.serveRequestReset))
	mux.Handle("GET /lab/hosts", l.requireLogin(l.serveHosts))
	mux.Handle("POST /lab/hosts/{name}/reboot", l.requireLogin(l.serveHostReboot))
	mux.Handle("/lab/", l.requireLogin(func(w http.ResponseWriter, r *http.Request) {
		writeJSONError(w, http.StatusNotFound, fmt.Sprintf("no lab endpoint for %s %s", r.Method, r.URL.Path))
	}))
}

// serveCountedSDK counts a SOAP request before the simulator serves it, so the count
// includes every request whose response a client has received.
func (l *Lab) serveCountedSDK(w http.ResponseWriter, r *http.Request) {
	l.requests.Add(1)
	l.model.Service.ServeSDK(w, r)
}

// requireLogin checks HTTP basic credentials against the simulator's login.
func (l *Lab) requireLogin(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, password, ok := r.BasicAuth()
		userMatches := subtle.ConstantTimeCompare([]byte(user), []byte(l.opts.username)) == 1
		passwordMatches := subtle.ConstantTimeCompare([]byte(password), []byte(l.opts.password)) == 1

		if !ok || !userMatches || !passwordMatches {
			l.log.Warn("lab endpoint login failed", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Basic realm="vcsim-gpu lab"`)
			writeJSONError(w, http.StatusUnauthorized, "invalid or missing credentials: use HTTP basic authentication with the vCenter login")
			return
		}

		next(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, value any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(value)
}

func writeJSONError(w http.ResponseWriter, status int, message string) {
	writeJSON(w, status, map[string]string{"error": message})
}

type requestCount struct {
	Requests int64 `json:"requests"`
}

func (l *Lab) serveRequestCount(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, requestCount{Requests: l.requests.Load()})
}

func (l *Lab) serveRequestReset(w http.ResponseWriter, _ *http.Request) {
	l.requests.Store(0)
	l.log.Info("SOAP request counter reset")
	writeJSON(w, http.StatusOK, requestCount{Requests: 0})
}

// hostStatus is one host in GET /lab/hosts.
type hostStatus struct {
	Name                string         `json:"name"`
	MoRef               string         `json:"moref"`
	RebindWithoutReboot bool           `json:"rebindWithoutReboot"`
	Devices             []deviceStatus `json:"devices"`
}

// deviceStatus is one passthrough-capable PCI device of a host.
type deviceStatus struct {
	ID            string `json:"id"`
	VendorID      string `json:"vendorId"`
	DeviceID      string `json:"deviceId"`
	DeviceName    string `json:"deviceName"`
	HardwareLabel string `json:"hardwareLabel"`
	Enabled       bool   `json:"passthruEnabled"`
	Active        bool   `json:"passthruActive"`
	RebootPending bool   `json:"rebootPending"`
	AssignedVM    string `json:"assignedVm"` // empty when no powered-on VM holds the device
}

// status returns the host's passthrough-capable devices. The caller holds s's lock.
func (s *passthroughSystem) status() hostStatus {
	status := hostStatus{
		Name:                s.hostName,
		MoRef:               s.host.Self.Value,
		RebindWithoutReboot: s.rebind,
		Devices:             []deviceStatus{},
	}

	for _, id := range s.deviceIDs {
		info := s.info(id)
		if !info.PassthruCapable {
			continue
		}

		device := s.devices[id]
		status.Devices = append(status.Devices, deviceStatus{
			ID:            id,
			VendorID:      fmt.Sprintf("0x%04x", uint16(device.VendorId)),
			DeviceID:      fmt.Sprintf("0x%04x", uint16(device.DeviceId)),
			DeviceName:    device.DeviceName,
			HardwareLabel: info.HardwareLabel,
			Enabled:       info.PassthruEnabled,
			Active:        info.PassthruActive,
			RebootPending: info.PassthruEnabled != info.PassthruActive,
			AssignedVM:    s.assigned[id].vmName,
		})
	}

	return status
}

func (l *Lab) serveHosts(w http.ResponseWriter, _ *http.Request) {
	ctx := l.newContext()
	hosts := make([]hostStatus, len(l.hosts))

	for i, system := range l.hosts {
		ctx.WithLock(system, func() { hosts[i] = system.status() })
	}

	writeJSON(w, http.StatusOK, map[string][]hostStatus{"hosts": hosts})
}

func (l *Lab) serveHostReboot(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	system := l.hostsByName[name]
	if system == nil {
		writeJSONError(w, http.StatusNotFound, fmt.Sprintf("host %q not found: GET /lab/hosts lists the hosts", name))
		return
	}

	ctx := l.newContext()
	var status hostStatus
	ctx.WithLock(system, func() {
		system.reboot(ctx)
		status = system.status()
	})

	writeJSON(w, http.StatusOK, status)
}
