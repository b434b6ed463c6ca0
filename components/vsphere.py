"""vCenter access with pyVmomi: connections opened per call, and a site read in one PropertyCollector pass.

Nothing here keeps a connection between calls, because Pulumi pickles dynamic providers into the state
and a live pyVmomi session cannot be pickled.
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
import ssl
from collections.abc import Iterator, Mapping
from typing import Any

from pyVim import connect as pyvim_connect
from pyVmomi import vim, vmodl

from components import gpu_catalog
from components.i18n import _

GPU_CLASS_IDS = frozenset({0x0300, 0x0302})
"""PCI class codes of display controllers: VGA (0x0300) and 3D controller (0x0302)."""


class VSphereError(RuntimeError):
    """A vCenter call failed; the message names the server, host or device involved, never a password."""


class NotFoundError(VSphereError):
    """An ESXi host or PCI device named in the stack does not exist in vCenter."""


@dataclasses.dataclass(frozen=True)
class Connection:
    """vCenter endpoint and credentials; the password is excluded from repr so it never reaches a log."""

    server: str
    username: str
    password: str = dataclasses.field(repr=False)
    insecure: bool = False
    thumbprint: str | None = None

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Connection:
        return cls(
            server=values["server"],
            username=values["username"],
            password=values["password"],
            insecure=bool(values.get("insecure", False)),
            thumbprint=values.get("thumbprint") or None,
        )

    def host_and_port(self) -> tuple[str, int]:
        host, _sep, port = self.server.rpartition(":")
        if host and port.isdigit():
            return host, int(port)

        return self.server, 443


@dataclasses.dataclass(frozen=True)
class PciDeviceState:
    """One PCI device of an ESXi host, with its passthrough flags as the host reports them."""

    host: str
    pci_address: str
    vendor_id: int
    device_id: int
    class_id: int
    vendor_name: str
    device_name: str
    capable: bool
    enabled: bool
    active: bool

    @property
    def reboot_required(self) -> bool:
        return self.enabled != self.active

    @property
    def is_gpu(self) -> bool:
        return self.vendor_id == gpu_catalog.NVIDIA_VENDOR_ID and self.class_id in GPU_CLASS_IDS


@dataclasses.dataclass(frozen=True)
class HostState:
    name: str
    ref: Any
    compute_resource: str
    """Name of the cluster (or standalone compute resource) the host belongs to."""
    passthrough_system: Any
    connection_state: str
    esxi_version: str
    memory_bytes: int
    devices: tuple[PciDeviceState, ...]

    def device(self, pci_address: str) -> PciDeviceState | None:
        return next((item for item in self.devices if item.pci_address == pci_address), None)


@contextlib.contextmanager
def connect(connection: Connection) -> Iterator[vim.ServiceInstance]:
    """Open a vCenter session for the duration of the block and always log out afterwards."""
    host, port = connection.host_and_port()
    try:
        service_instance = pyvim_connect.SmartConnect(
            host=host,
            port=port,
            user=connection.username,
            pwd=connection.password,
            thumbprint=connection.thumbprint,
            disableSslCertValidation=connection.insecure,
            httpConnectionTimeout=60,
        )
    except vim.fault.InvalidLogin:
        raise VSphereError(
            _("vCenter login failed for user {user} at {server}: check tkg-gpu:vcenter.username and the vcenterPassword secret").format(
                user=connection.username, server=connection.server
            )
        ) from None
    except (OSError, ssl.SSLError, socket.timeout) as error:
        raise VSphereError(
            _("cannot reach vCenter at {server}: {error}; check tkg-gpu:vcenter.server and the TLS settings").format(
                server=connection.server, error=type(error).__name__ + ": " + str(error)
            )
        ) from None

    try:
        yield service_instance
    finally:
        with contextlib.suppress(Exception):
            pyvim_connect.Disconnect(service_instance)


_HOST_PROPERTIES = [
    "name",
    "hardware.pciDevice",
    "hardware.memorySize",
    "config.pciPassthruInfo",
    "config.product.version",
    "configManager.pciPassthruSystem",
    "runtime.connectionState",
    "parent",
]


def read_hosts(service_instance: vim.ServiceInstance) -> dict[str, HostState]:
    """Read every ESXi host with its PCI devices in four round trips, however many hosts there are.

    The calls are RetrieveServiceContent (pyVmomi fetches ``content`` on every access),
    CreateContainerView, one RetrievePropertiesEx (continued only past the page size of 1000 objects)
    and DestroyView.
    """
    content = service_instance.content
    view = content.viewManager.CreateContainerView(
        content.rootFolder, [vim.HostSystem, vim.ComputeResource], True
    )
    try:
        traversal = vmodl.query.PropertyCollector.TraversalSpec(
            name="view", type=vim.view.ContainerView, path="view", skip=False
        )
        spec = vmodl.query.PropertyCollector.FilterSpec(
            objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=view, skip=True, selectSet=[traversal])],
            propSet=[
                vmodl.query.PropertyCollector.PropertySpec(type=vim.HostSystem, pathSet=_HOST_PROPERTIES),
                vmodl.query.PropertyCollector.PropertySpec(type=vim.ComputeResource, pathSet=["name"]),
            ],
        )
        collector = content.propertyCollector
        result = collector.RetrievePropertiesEx([spec], vmodl.query.PropertyCollector.RetrieveOptions(maxObjects=1000))
        objects = list(result.objects) if result else []
        while result is not None and result.token:
            result = collector.ContinueRetrievePropertiesEx(result.token)
            objects.extend(result.objects)
    finally:
        view.DestroyView()

    # A host's parent is its cluster, or for a standalone host a ComputeResource of its own.
    compute_names = {
        item.obj._moId: item.propSet[0].val for item in objects if not isinstance(item.obj, vim.HostSystem)
    }
    hosts = {}
    for item in objects:
        if not isinstance(item.obj, vim.HostSystem):
            continue

        properties = {prop.name: prop.val for prop in item.propSet}
        parent = properties.get("parent")
        host = _host_state(item.obj, properties, compute_names.get(parent._moId, "") if parent else "")
        hosts[host.name] = host

    return hosts


def read_host(service_instance: vim.ServiceInstance, name: str, moid: str | None = None) -> HostState:
    """Read one ESXi host, by its managed object ID when known, else through a full site read.

    With a valid ``moid`` this costs two round trips (RetrieveServiceContent and RetrievePropertiesEx)
    and reads no other host. A stale ID (the host was removed and added again) or a name mismatch falls
    back to read_hosts. Raises NotFoundError when no host of that name exists.
    """
    if moid:
        content = service_instance.content
        spec = vmodl.query.PropertyCollector.FilterSpec(
            objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=vim.HostSystem(moid, service_instance._stub))],
            propSet=[vmodl.query.PropertyCollector.PropertySpec(type=vim.HostSystem, pathSet=_HOST_PROPERTIES)],
        )
        try:
            result = content.propertyCollector.RetrievePropertiesEx([spec], vmodl.query.PropertyCollector.RetrieveOptions())
        except vmodl.fault.ManagedObjectNotFound:
            result = None

        if result is not None and result.objects:
            item = result.objects[0]
            properties = {prop.name: prop.val for prop in item.propSet}
            if properties.get("name") == name:
                # The cluster name is not needed for one device, so it is left empty rather than read.
                return _host_state(item.obj, properties, "")

    return find_host(read_hosts(service_instance), name)


def _host_state(ref: Any, properties: dict[str, Any], compute_resource: str) -> HostState:
    name = properties["name"]
    passthrough = {info.id: info for info in properties.get("config.pciPassthruInfo") or []}
    devices = []
    for device in properties.get("hardware.pciDevice") or []:
        info = passthrough.get(device.id)
        devices.append(
            PciDeviceState(
                host=name,
                pci_address=device.id,
                vendor_id=gpu_catalog.normalize_pci_id(device.vendorId),
                device_id=gpu_catalog.normalize_pci_id(device.deviceId),
                class_id=gpu_catalog.normalize_pci_id(device.classId),
                vendor_name=device.vendorName or "",
                device_name=device.deviceName or "",
                capable=bool(info and info.passthruCapable),
                enabled=bool(info and info.passthruEnabled),
                active=bool(info and info.passthruActive),
            )
        )

    return HostState(
        name=name,
        ref=ref,
        compute_resource=compute_resource,
        passthrough_system=properties.get("configManager.pciPassthruSystem"),
        connection_state=str(properties.get("runtime.connectionState", "")),
        esxi_version=str(properties.get("config.product.version", "")),
        memory_bytes=int(properties.get("hardware.memorySize") or 0),
        devices=tuple(devices),
    )


# Highest VM hardware version each ESXi release runs, by major.minor.update as config.product.version
# reports it (vSphere Automation API hardware-version enumeration, citing VMware KB 1003746).
ESXI_MAX_HARDWARE_VERSION = {
    (6, 5): 13,
    # 6.7 U2 and later run vmx-15 but report the same 6.7.0 version, so 6.7 counts as vmx-14.
    (6, 7): 14,
    (7, 0, 0): 17,
    (7, 0, 1): 18,
    (7, 0, 2): 19,
    (7, 0, 3): 19,
    (8, 0, 0): 20,
    (8, 0, 1): 20,
    (8, 0, 2): 21,
    (8, 0, 3): 21,
}


def max_hardware_version(esxi_version: str) -> int | None:
    """Return the highest ``vmx-N`` an ESXi release runs, or None for a version missing from the table."""
    try:
        parts = tuple(int(part) for part in esxi_version.split(".")[:3])
    except ValueError:
        return None

    return ESXI_MAX_HARDWARE_VERSION.get(parts) or ESXI_MAX_HARDWARE_VERSION.get(parts[:2])


@dataclasses.dataclass(frozen=True)
class TemplateState:
    """The worker VM template as vCenter reports it."""

    path: str
    is_template: bool
    firmware: str
    hardware_version: str
    secure_boot: bool


def read_template(service_instance: vim.ServiceInstance, path: str) -> TemplateState | None:
    """Read the template at an inventory path in three round trips; None when nothing is there."""
    content = service_instance.content
    vm = content.searchIndex.FindByInventoryPath(path)
    if vm is None or not isinstance(vm, vim.VirtualMachine):
        return None

    config = vm.config
    boot = config.bootOptions if config else None

    return TemplateState(
        path=path,
        is_template=bool(config and config.template),
        firmware=str(config.firmware) if config else "",
        hardware_version=str(config.version) if config else "",
        secure_boot=bool(boot and boot.efiSecureBootEnabled),
    )


def find_host(hosts: Mapping[str, HostState], name: str) -> HostState:
    host = hosts.get(name)
    if host is None:
        known = ", ".join(sorted(hosts)) or _("none")
        raise NotFoundError(
            _("ESXi host {host} not found in vCenter; hosts found: {known}").format(host=name, known=known)
        )

    return host


def set_passthrough(host: HostState, pci_address: str, enabled: bool) -> None:
    """Request passthrough on or off for one device, asking the host to apply it without a reboot."""
    if host.passthrough_system is None:
        raise VSphereError(_("ESXi host {host} has no PCI passthrough system").format(host=host.name))

    change = vim.host.PciPassthruConfig(id=pci_address, passthruEnabled=enabled, applyNow=True)
    try:
        host.passthrough_system.UpdatePassthruConfig([change])
    except (vim.fault.HostConfigFault, vmodl.fault.InvalidArgument, vim.fault.NotFound) as fault:
        raise VSphereError(
            _("ESXi host {host} rejected the passthrough change of PCI device {device}: {fault}").format(
                host=host.name, device=pci_address, fault=fault.msg or type(fault).__name__
            )
        ) from None
