"""vCenter work of the double with pyVmomi: find the inventory, clone, configure, destroy.

The machine steps follow CAPV after the ordering fix of cluster-api-provider-vsphere PR 1775.
First the template is cloned with CPUs, memory, disk, NIC and the custom VMX keys as
extraConfig. When PCI devices are requested, the clone's memory reservation is locked to its
full size. Then the virtual hardware is upgraded when the requested version is newer, one
Dynamic DirectPath VirtualPCIPassthrough device is added per PCI pair, and the VM is powered on.
"""

from __future__ import annotations

import hashlib
import http.client
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from pyVim.connect import Connect, Disconnect, SmartConnect
from pyVmomi import VmomiSupport, vim, vmodl

from .endpoint import Connection, split_server
from .errors import CliError
from .validation import MachineSpec, PciDevice, VSphereCredentials

Log = Callable[[str], None]

TASK_POLL_SECONDS = 0.2
# Dynamic DirectPath (VirtualPCIPassthrough.DynamicBackingInfo) arrived with vSphere API 7.0.
MINIMUM_API_VERSION = "vim.version.v7_0"
FORCED_API_VERSION = "vim.version.v7_0_3_0"


class VCenterError(CliError):
    """A vCenter call failed; the message carries vCenter's fault text."""


@dataclass
class Inventory:
    """The vCenter objects a cluster is built from."""

    datacenter: vim.Datacenter
    folder: vim.Folder
    resource_pool: vim.ResourcePool
    datastore: vim.Datastore | None
    network: vim.Network
    template: vim.VirtualMachine
    template_name: str


def _peer_certificate(host: str, port: int) -> bytes:
    context = ssl._create_unverified_context()  # noqa: S323 - the thumbprint is checked below
    with socket.create_connection((host, port), timeout=15) as raw:
        with context.wrap_socket(raw, server_hostname=host) as tls:
            certificate = tls.getpeercert(binary_form=True)
    if not certificate:
        raise VCenterError(f"vCenter {host}:{port} presented no TLS certificate")
    return certificate


def _check_thumbprint(host: str, port: int, expected: str) -> None:
    """Compare the server certificate with VSPHERE_TLS_THUMBPRINT (SHA-1 or SHA-256, any case)."""
    expected_digest = expected.replace(":", "").lower()
    algorithms = {40: hashlib.sha1, 64: hashlib.sha256}
    if len(expected_digest) not in algorithms:
        raise VCenterError("invalid VSPHERE_TLS_THUMBPRINT: expected a SHA-1 or SHA-256 fingerprint in hex")
    actual = algorithms[len(expected_digest)](_peer_certificate(host, port)).hexdigest()
    if actual != expected_digest:
        pretty = ":".join(actual[index : index + 2] for index in range(0, len(actual), 2)).upper()
        raise VCenterError(
            f"the TLS certificate of vCenter {host}:{port} does not match VSPHERE_TLS_THUMBPRINT "
            f"(server thumbprint {pretty})"
        )


def connect(connection: Connection, credentials: VSphereCredentials) -> vim.ServiceInstance:
    host, port = split_server(connection.server)
    try:
        if connection.insecure:
            context = ssl._create_unverified_context()  # noqa: S323 - VSPHERE_INSECURE is set
        elif connection.thumbprint:
            _check_thumbprint(host, port, connection.thumbprint)
            context = ssl._create_unverified_context()  # noqa: S323 - pinned by thumbprint above
        else:
            context = ssl.create_default_context()
        service_instance = SmartConnect(
            host=host,
            port=port,
            user=credentials.username,
            pwd=credentials.password,
            sslContext=context,
            httpConnectionTimeout=60,
        )
        if VmomiSupport.IsChildVersion(service_instance._stub.version, MINIMUM_API_VERSION):
            return service_instance
        # pyVmomi serializes objects newer than the negotiated API version as their older base
        # type, which would drop the Dynamic DirectPath backing. TKG 2.x needs vSphere 7 anyway,
        # so talk 7.0.3 to a server that advertises less (govmomi's simulator advertises 6.5).
        disconnect(service_instance)
        return Connect(
            host=host,
            port=port,
            user=credentials.username,
            pwd=credentials.password,
            sslContext=context,
            version=FORCED_API_VERSION,
            httpConnectionTimeout=60,
        )
    except vim.fault.InvalidLogin as fault:
        raise VCenterError(
            f"cannot log in to vCenter {host}:{port} as {credentials.username!r}: {fault_text(fault)}"
        ) from None
    except ssl.SSLCertVerificationError as error:
        raise VCenterError(
            f"cannot verify the TLS certificate of vCenter {host}:{port} ({error.verify_message}); "
            "set VSPHERE_TLS_THUMBPRINT, or VSPHERE_INSECURE: true for a lab server"
        ) from None
    except vmodl.MethodFault as fault:
        raise VCenterError(f"cannot connect to vCenter {host}:{port}: {fault_text(fault)}") from None
    except OSError as error:
        reason = error.strerror or str(error)
        raise VCenterError(f"cannot connect to vCenter {host}:{port}: {reason}") from None
    except VCenterError:
        raise
    except Exception as error:  # pyVmomi raises plain Exception for a non-vCenter endpoint
        raise VCenterError(f"cannot connect to vCenter {host}:{port}: {error}") from None


def disconnect(service_instance: vim.ServiceInstance) -> None:
    try:
        Disconnect(service_instance)
    except Exception:  # noqa: BLE001 - logging out is best effort
        pass


def fault_text(fault: BaseException) -> str:
    """vCenter's message of a fault, or the text of a connection error, or the fault type.

    The localized message comes first, followed by the fault's detail messages. govmomi's
    simulator puts only the Go type name (such as *types.InsufficientResourcesFault) into the
    localized message of a task error and keeps the explanation in faultMessage.
    """
    if not isinstance(fault, vmodl.MethodFault):
        return (getattr(fault, "strerror", None) or str(fault) or type(fault).__name__).strip()
    parts: list[str] = []
    message = getattr(fault, "msg", None)
    if message:
        parts.append(str(message))
    for item in getattr(fault, "faultMessage", None) or []:
        detail = str(getattr(item, "message", None) or "")
        if detail and detail not in parts:
            parts.append(detail)
    if parts:
        return ": ".join(parts)
    return type(fault).__name__.rsplit(".", 1)[-1]


# Errors a vCenter call can end with besides a task error: a SOAP fault, or a broken connection.
CALL_ERRORS = (vmodl.MethodFault, OSError, http.client.HTTPException)


def run_task(start: Callable[[], vim.Task], description: str, deadline: float) -> object:
    """Start a task and wait for it; every failure becomes a VCenterError with vCenter's text."""
    try:
        task = start()
        while True:
            info = task.info
            if info.state == vim.TaskInfo.State.success:
                return info.result
            if info.state == vim.TaskInfo.State.error:
                raise VCenterError(f"{description} failed: {fault_text(info.error)}")
            if time.monotonic() > deadline:
                raise VCenterError(f"{description} timed out")
            time.sleep(TASK_POLL_SECONDS)
    except CALL_ERRORS as error:
        raise VCenterError(f"{description} failed: {fault_text(error)}") from None


def _container_objects(service_instance: vim.ServiceInstance, root: vim.ManagedEntity, kind: type) -> list:
    manager = service_instance.content.viewManager
    view = manager.CreateContainerView(root, [kind], True)
    try:
        return list(view.view)
    finally:
        view.DestroyView()


def _by_path(service_instance: vim.ServiceInstance, path: str) -> object | None:
    index = service_instance.content.searchIndex
    found = index.FindByInventoryPath(path)
    if found is None and path.startswith("/"):
        found = index.FindByInventoryPath(path.lstrip("/"))
    return found


def find_datacenter(service_instance: vim.ServiceInstance, spec: str) -> vim.Datacenter:
    if "/" in spec.strip("/"):
        raise VCenterError(f"VSPHERE_DATACENTER {spec!r} is not a datacenter name or /name path")
    name = spec.strip("/")
    matches = [
        datacenter
        for datacenter in _container_objects(service_instance, service_instance.content.rootFolder, vim.Datacenter)
        if datacenter.name == name
    ]
    if not matches:
        raise VCenterError(f"cannot find datacenter {spec!r} in vCenter (VSPHERE_DATACENTER)")
    if len(matches) > 1:
        raise VCenterError(f"datacenter name {spec!r} is ambiguous; use its inventory path")
    return matches[0]


def _find_entity(
    service_instance: vim.ServiceInstance,
    datacenter: vim.Datacenter,
    spec: str,
    kind: type,
    relative_root: vim.Folder,
    variable: str,
    accept: Callable[[object], bool] = lambda _: True,
) -> object:
    """Find an inventory object by absolute path, path relative to the datacenter folder, or name."""
    found: object | None = None
    if spec.startswith("/"):
        found = _by_path(service_instance, spec)
    elif "/" in spec:
        found = _by_path(service_instance, f"{_inventory_path(relative_root)}/{spec}")
    else:
        matches = [
            item
            for item in _container_objects(service_instance, datacenter, kind)
            if item.name == spec and accept(item)
        ]
        if len(matches) > 1:
            raise VCenterError(
                f"{variable} {spec!r} matches {len(matches)} objects in datacenter "
                f"{datacenter.name!r}; use the full inventory path"
            )
        found = matches[0] if matches else None
        if found is None and kind is vim.ResourcePool:
            # A cluster or standalone host name stands for its root resource pool.
            owners = [
                item for item in _container_objects(service_instance, datacenter, vim.ComputeResource) if item.name == spec
            ]
            found = owners[0] if len(owners) == 1 else None
    if kind is vim.ResourcePool and isinstance(found, vim.ComputeResource):
        found = found.resourcePool
    if found is None or not isinstance(found, kind) or not accept(found):
        raise VCenterError(f"cannot find {variable} {spec!r} in datacenter {datacenter.name!r}")
    return found


def _inventory_path(entity: vim.ManagedEntity) -> str:
    """Absolute inventory path such as /dc-lab/vm; the root folder has no parent and no path part."""
    parts: list[str] = []
    node = entity
    while node is not None and node.parent is not None:
        parts.append(node.name)
        node = node.parent
    return "/" + "/".join(reversed(parts))


def _is_vm_folder(folder: object) -> bool:
    return "VirtualMachine" in (getattr(folder, "childType", None) or [])


def find_inventory(service_instance: vim.ServiceInstance, target) -> Inventory:
    """Resolve the VSPHERE_* inventory settings of a VSphereTarget, or raise VCenterError."""
    datacenter = find_datacenter(service_instance, target.datacenter)
    folder = _find_entity(
        service_instance, datacenter, target.folder, vim.Folder, datacenter.vmFolder, "VSPHERE_FOLDER", _is_vm_folder
    )
    pool = _find_entity(
        service_instance, datacenter, target.resource_pool, vim.ResourcePool, datacenter.hostFolder,
        "VSPHERE_RESOURCE_POOL",
    )
    datastore = None
    if target.datastore:
        datastore = _find_entity(
            service_instance, datacenter, target.datastore, vim.Datastore, datacenter.datastoreFolder,
            "VSPHERE_DATASTORE",
        )
    network = _find_entity(
        service_instance, datacenter, target.network, vim.Network, datacenter.networkFolder, "VSPHERE_NETWORK"
    )
    template = _find_template(service_instance, datacenter, target.template)
    return Inventory(datacenter, folder, pool, datastore, network, template, template.name)


def _find_template(
    service_instance: vim.ServiceInstance, datacenter: vim.Datacenter, spec: str | None
) -> vim.VirtualMachine:
    if spec:
        return _find_entity(
            service_instance, datacenter, spec, vim.VirtualMachine, datacenter.vmFolder, "VSPHERE_TEMPLATE"
        )
    # TKG picks the template whose OVA version matches the TKR; the double accepts a single template.
    templates = [
        vm
        for vm in _container_objects(service_instance, datacenter, vim.VirtualMachine)
        if vm.config is not None and vm.config.template
    ]
    if len(templates) != 1:
        raise VCenterError(
            f"VSPHERE_TEMPLATE is not set and datacenter {datacenter.name!r} has {len(templates)} "
            "VM templates; set VSPHERE_TEMPLATE to the template's name or inventory path"
        )
    return templates[0]


def hardware_version_number(version: str | None) -> int:
    try:
        return int((version or "").removeprefix("vmx-"))
    except ValueError:
        return 0


def as_int16(value: int) -> int:
    """PCI IDs as vSphere's signed 16-bit fields carry them (0x8000 and above are negative)."""
    if not 0 <= value <= 0xFFFF:
        raise VCenterError(f"PCI ID {value} does not fit in 16 bits")
    return value - 0x10000 if value >= 0x8000 else value


def _network_backing(network: vim.Network) -> vim.vm.device.VirtualDevice.BackingInfo:
    if isinstance(network, vim.dvs.DistributedVirtualPortgroup):
        switch = network.config.distributedVirtualSwitch
        port = vim.dvs.PortConnection(switchUuid=switch.uuid, portgroupKey=network.key)
        return vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo(port=port)
    return vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(deviceName=network.name, network=network)


def _device_changes(template: vim.VirtualMachine, machine: MachineSpec, network: vim.Network) -> list:
    changes: list = []
    devices = template.config.hardware.device
    disks = [device for device in devices if isinstance(device, vim.vm.device.VirtualDisk)]
    if disks:
        disk = disks[0]
        requested_kb = machine.disk_gib * 1024 * 1024
        if requested_kb < disk.capacityInKB:
            raise VCenterError(
                f"cannot shrink the template disk: it has {disk.capacityInKB} KiB, {requested_kb} KiB requested"
            )
        if requested_kb > disk.capacityInKB:
            disk.capacityInKB = requested_kb
            changes.append(
                vim.vm.device.VirtualDeviceSpec(operation=vim.vm.device.VirtualDeviceSpec.Operation.edit, device=disk)
            )
    for nic in devices:
        if isinstance(nic, vim.vm.device.VirtualEthernetCard):
            changes.append(
                vim.vm.device.VirtualDeviceSpec(operation=vim.vm.device.VirtualDeviceSpec.Operation.remove, device=nic)
            )
    new_nic = vim.vm.device.VirtualVmxnet3(key=-100, backing=_network_backing(network))
    new_nic.connectable = vim.vm.device.VirtualDevice.ConnectInfo(startConnected=True, allowGuestControl=True)
    changes.append(
        vim.vm.device.VirtualDeviceSpec(operation=vim.vm.device.VirtualDeviceSpec.Operation.add, device=new_nic)
    )
    return changes


def clone_machine(
    inventory: Inventory, name: str, machine: MachineSpec, deadline: float
) -> vim.VirtualMachine:
    """Clone the template into a powered-off VM sized for `machine`.

    NOTE: every clone is a full clone (VSPHERE_CLONE_MODE linkedClone is not simulated), and
    VSPHERE_STORAGE_POLICY_ID does not steer placement; without VSPHERE_DATASTORE vCenter picks.
    """
    try:
        device_changes = _device_changes(inventory.template, machine, inventory.network)
    except CALL_ERRORS as error:
        raise VCenterError(f"reading the devices of template {inventory.template_name!r} failed: {fault_text(error)}") from None
    config = vim.vm.ConfigSpec(
        numCPUs=max(machine.num_cpus, 2),
        numCoresPerSocket=max(machine.num_cpus, 2),
        memoryMB=machine.memory_mib,
        flags=vim.vm.FlagInfo(diskUuidEnabled=True),
        deviceChange=device_changes,
        extraConfig=[vim.option.OptionValue(key=key, value=value) for key, value in machine.custom_vmx_keys.items()],
    )
    if machine.pci_devices:
        config.memoryReservationLockedToMax = True
    location = vim.vm.RelocateSpec(pool=inventory.resource_pool)
    if inventory.datastore is not None:
        location.datastore = inventory.datastore
    spec = vim.vm.CloneSpec(location=location, powerOn=False, template=False, config=config)
    return run_task(
        lambda: inventory.template.CloneVM_Task(folder=inventory.folder, name=name, spec=spec),
        f"cloning VM {name!r}",
        deadline,
    )


def upgrade_hardware(vm: vim.VirtualMachine, version: str, deadline: float) -> bool:
    """Upgrade to `version` when the VM is older, as CAPV does. Returns whether it upgraded."""
    if hardware_version_number(vm.config.version) >= hardware_version_number(version):
        return False
    run_task(lambda: vm.UpgradeVM_Task(version=version), f"upgrading VM {vm.name!r} to {version}", deadline)
    return True


def attach_pci_devices(vm: vim.VirtualMachine, devices: Iterable[PciDevice], deadline: float) -> None:
    changes = []
    for offset, device in enumerate(devices):
        allowed = vim.vm.device.VirtualPCIPassthrough.AllowedDevice(
            vendorId=as_int16(device.vendor_id), deviceId=as_int16(device.device_id)
        )
        backing = vim.vm.device.VirtualPCIPassthrough.DynamicBackingInfo(deviceName="", allowedDevice=[allowed])
        passthrough = vim.vm.device.VirtualPCIPassthrough(key=-200 - offset, backing=backing)
        changes.append(
            vim.vm.device.VirtualDeviceSpec(operation=vim.vm.device.VirtualDeviceSpec.Operation.add, device=passthrough)
        )
    spec = vim.vm.ConfigSpec(deviceChange=changes, memoryReservationLockedToMax=True)
    run_task(lambda: vm.ReconfigVM_Task(spec=spec), f"adding PCI devices to VM {vm.name!r}", deadline)


def power_on(vm: vim.VirtualMachine, deadline: float) -> None:
    run_task(vm.PowerOnVM_Task, f"powering on VM {vm.name!r}", deadline)


def read_properties(service_instance: vim.ServiceInstance, obj: vmodl.ManagedObject, paths: list[str]) -> dict:
    """Read selected property paths of one object in a single PropertyCollector call.

    Reading nested paths such as runtime.powerState, instead of the whole runtime object,
    also avoids values that pyVmomi cannot parse (govmomi's simulator leaves
    runtime.faultToleranceState empty on cloned VMs).
    """
    collector = service_instance.content.propertyCollector
    spec = vmodl.query.PropertyCollector.FilterSpec(
        objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=obj, skip=False)],
        propSet=[vmodl.query.PropertyCollector.PropertySpec(type=type(obj), pathSet=paths, all=False)],
    )
    result = collector.RetrievePropertiesEx([spec], vmodl.query.PropertyCollector.RetrieveOptions())
    values: dict = {}
    for item in (result.objects if result else []) or []:
        for prop in item.propSet or []:
            values[prop.name] = prop.val
    return values


def destroy_vms(service_instance: vim.ServiceInstance, vm_ids: Iterable[str], log: Log, deadline: float) -> None:
    """Power off and destroy VMs by managed object id; VMs that are already gone are skipped."""
    for vm_id in vm_ids:
        vm = vim.VirtualMachine(vm_id, service_instance._stub)
        try:
            properties = read_properties(service_instance, vm, ["name", "runtime.powerState"])
        except vmodl.fault.ManagedObjectNotFound:
            continue
        except CALL_ERRORS as error:
            raise VCenterError(f"reading VM {vm_id} failed: {fault_text(error)}") from None
        if not properties:
            continue
        name = properties.get("name", vm_id)
        state = properties.get("runtime.powerState")
        if state == vim.VirtualMachinePowerState.poweredOn:
            run_task(vm.PowerOffVM_Task, f"powering off VM {name!r}", deadline)
        run_task(vm.Destroy_Task, f"destroying VM {name!r}", deadline)
        log(f"destroyed VM {name!r}")
