package main

import (
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
	"github.com/vmware/govmomi/vim25/types"
)

// How the lab intercepts SOAP methods of simulator objects.
//
// For a logged-in session the simulator dispatches to the object that the session's own
// registry returns for the call's target, and that lookup falls back to the shared
// registry. The object returned by the Registry.Handler hook is therefore overridden.
// So route, the Handler hook, puts a hook object into the calling session's registry
// under the target's reference, and the hook method removes it again when it returns. Hook objects
// embed the simulator object, so other calls of the same session that arrive meanwhile
// still reach it. A counter per session and reference keeps a hook installed while
// several calls use it.
//
// Replacing the objects in the shared registry instead would break the simulator code
// that type-asserts them to *simulator.VirtualMachine or *simulator.HostSystem.

// installedHook identifies a hook object in one session's registry.
type installedHook struct {
	registry *simulator.Registry
	ref      types.ManagedObjectReference
}

// hookedVMMethods are the VirtualMachine methods that vmHooks implements.
var hookedVMMethods = map[string]bool{
	"PowerOnVM_Task":  true,
	"PowerOffVM_Task": true,
	"ShutdownGuest":   true,
	"SuspendVM_Task":  true,
	"ReconfigVM_Task": true,
	"Destroy_Task":    true,
	"CloneVM_Task":    true,
}

// anonymousMethods are the SOAP methods a client may call before it logs in.
var anonymousMethods = map[string]bool{
	"RetrieveServiceContent": true,
	"Login":                  true,
	"CloneSession":           true,
}

// disabledLogins are login methods that the simulator would accept without checking a
// password or token.
var disabledLogins = map[string]bool{
	"LoginByToken":                true,
	"LoginExtensionByCertificate": true,
	"LoginExtensionBySubjectName": true,
	"LoginBySSPI":                 true,
}

// route is the registry's Handler hook, called before every SOAP method. It rejects
// calls without a session (the simulator lets anyone read properties) and installs the
// hook objects for the methods that touch PCI passthrough.
func (l *Lab) route(ctx *simulator.Context, method *simulator.Method) (mo.Reference, types.BaseMethodFault) {
	if disabledLogins[method.Name] {
		return nil, new(types.InvalidLogin)
	}
	if ctx.Session == nil {
		if anonymousMethods[method.Name] {
			return nil, nil
		}
		return nil, &types.NotAuthenticated{NoPermission: types.NoPermission{Object: &method.This, PrivilegeId: "System.View"}}
	}

	var hook mo.Reference
	switch {
	case method.This.Type == "VirtualMachine" && hookedVMMethods[method.Name]:
		if vm, ok := ctx.Map.Get(method.This).(*simulator.VirtualMachine); ok {
			hook = &vmHooks{VirtualMachine: vm, lab: l}
		}
	case method.This.Type == "HostSystem" && method.Name == "RebootHost_Task":
		if system := l.hostsByRef[method.This]; system != nil {
			hook = &hostRebootHook{HostSystem: system.host, Self: system.Self, system: system, lab: l}
		}
	}

	if hook != nil {
		l.installHook(ctx, hook)
	}

	return hook, nil
}

func (l *Lab) installHook(ctx *simulator.Context, hook mo.Reference) {
	key := installedHook{registry: ctx.Session.Registry, ref: hook.Reference()}

	l.hookMu.Lock()
	defer l.hookMu.Unlock()

	l.hookCalls[key]++
	if l.hookCalls[key] == 1 {
		key.registry.Put(hook)
	}
}

// uninstallHook ends one call's use of the hook object for ref. Every hook method defers it.
func (l *Lab) uninstallHook(ctx *simulator.Context, ref types.ManagedObjectReference) {
	key := installedHook{registry: ctx.Session.Registry, ref: ref}

	l.hookMu.Lock()
	defer l.hookMu.Unlock()

	l.hookCalls[key]--
	if l.hookCalls[key] <= 0 {
		delete(l.hookCalls, key)
		key.registry.Remove(ctx, ref)
	}
}
