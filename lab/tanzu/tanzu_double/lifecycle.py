"""Cluster creation in vCenter, the VM build steps it shares with `scale`, and deletions.

`create` blocks like TKG's: it returns after every VM is powered on, or fails with vCenter's
fault text. VMs that were made before a failure stay in vCenter and in the record, and the
cluster reads as createStalled until someone deletes it, as a real cluster whose machines
cannot start stays in the management cluster.

`delete` only marks a record. Every later invocation of the double first calls reconcile(),
which finishes deletions whose delay (TANZU_DOUBLE_DELETE_DELAY_SECONDS, default 2) has
passed and whose create or scale process has ended: it destroys the cluster's VMs and removes
the record. The same step destroys VMs that a scale-down queued. The double keeps no vCenter
password, so that step logs in with TANZU_DOUBLE_VSPHERE_USERNAME and
TANZU_DOUBLE_VSPHERE_PASSWORD from the environment of the invocation, standing in for the
credentials a real management cluster keeps. Without them the cluster stays `deleting`, and every
invocation prints a warning.

When the environment names the lab's Kubernetes clusters (planes.py), create writes the
cluster's CAPI objects before the first VM is cloned and brings them and the workload Nodes up to
date once the VMs run. A completed deletion removes them before the VMs are destroyed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from . import records
from .config import decode_password
from .endpoint import Connection
from .errors import CliError
from .planes import PlaneError, planes_from_env
from .progress import ProgressLog
from .state import StateStore, now_iso
from .validation import ClusterSpec, MachineSpec, VSphereCredentials, VSphereTarget

if TYPE_CHECKING:  # pyVmomi loads only for commands that talk to vCenter
    from .vsphere import Inventory

DELETE_DELAY_VARIABLE = "TANZU_DOUBLE_DELETE_DELAY_SECONDS"
DEFAULT_DELETE_DELAY_SECONDS = 2.0
FINALIZE_TIMEOUT_SECONDS = 300.0


def delete_delay(environ: dict[str, str]) -> float:
    text = environ.get(DELETE_DELAY_VARIABLE, "")
    if not text:
        return DEFAULT_DELETE_DELAY_SECONDS
    try:
        value = float(text)
    except ValueError:
        raise CliError(f"invalid {DELETE_DELAY_VARIABLE} {text!r}: expected a number of seconds") from None
    if value < 0:
        raise CliError(f"invalid {DELETE_DELAY_VARIABLE} {text!r}: must not be negative")
    return value


# The vCenter login the management cluster keeps for its providers; the lab sets these, because the
# double stores no password of its own.
MANAGEMENT_USERNAME_VARIABLE = "TANZU_DOUBLE_VSPHERE_USERNAME"
MANAGEMENT_PASSWORD_VARIABLE = "TANZU_DOUBLE_VSPHERE_PASSWORD"


def credentials_from_env(environ: dict[str, str]) -> VSphereCredentials | None:
    username = environ.get(MANAGEMENT_USERNAME_VARIABLE, "")
    password = environ.get(MANAGEMENT_PASSWORD_VARIABLE, "")
    if not username or not password:
        return None
    return VSphereCredentials(username, decode_password(password))


def update_record(store: StateStore, namespace: str, name: str, mutate: Callable[[dict], None]) -> dict | None:
    """Apply `mutate` to the stored record under the lock. Returns None when the record is gone."""
    with store.locked():
        record = store.load(namespace, name)
        if record is None:
            return None
        mutate(record)
        store.save(record)
        return record


def reconcile(store: StateStore, log: ProgressLog, environ: dict[str, str]) -> None:
    """Finish due cluster deletions and queued VM deletions. The caller holds the store lock."""
    delay = delete_delay(environ)
    now = time.time()
    for record in store.list():
        due = (
            record["phase"] == "deleting"
            and now >= record.get("deleteRequestedEpoch", 0) + delay
            and not records.create_in_progress(record)
            and not records.scale_in_progress(record)
        )
        pending = list(record.get("pendingVmDeletions") or [])
        if not due and not pending:
            continue
        vm_ids = pending
        if due:
            vm_ids += [machine["vmId"] for machine in record["machines"] if machine.get("vmId")]
            if not _remove_from_planes(record, log, environ, store.root):
                continue
        if vm_ids and not _destroy(record, vm_ids, log, environ):
            continue
        if due:
            store.remove(record["namespace"], record["name"])
        else:
            record["pendingVmDeletions"] = []
            store.save(record)


def _remove_from_planes(record: dict, log: ProgressLog, environ: dict[str, str], state_dir: str) -> bool:
    """Delete the cluster's CAPI objects and Nodes, if the environment names the lab's clusters."""
    planes = planes_from_env(environ, state_dir)
    if planes is None:
        return True
    try:
        planes.remove(record)
    except PlaneError as error:
        log.warning(f"cluster '{record['name']}' cannot finish deleting yet: {error}")
        return False
    return True


def sync_planes(store: StateStore, namespace: str, name: str, environ: dict[str, str]) -> None:
    """Bring the cluster's CAPI objects and Nodes in line with its record. Raises PlaneError.

    Does nothing when the environment names neither of the lab's clusters or the record is gone.
    Runs under the store lock, so it writes a consistent record.
    """
    planes = planes_from_env(environ, store.root)
    if planes is None:
        return
    with store.locked():
        record = store.load(namespace, name)
        if record is not None:
            planes.sync(record)


def _destroy(record: dict, vm_ids: list[str], log: ProgressLog, environ: dict[str, str]) -> bool:
    credentials = credentials_from_env(environ)
    if credentials is None:
        log.warning(
            f"cluster '{record['name']}' cannot finish deleting: set {MANAGEMENT_USERNAME_VARIABLE} and "
            f"{MANAGEMENT_PASSWORD_VARIABLE} in the environment so the test double can remove its VMs from vCenter"
        )
        return False
    from .vsphere import connect, destroy_vms, disconnect

    deadline = time.monotonic() + FINALIZE_TIMEOUT_SECONDS
    try:
        service_instance = connect(Connection.from_record(record["vcenter"]), credentials)
        try:
            destroy_vms(service_instance, vm_ids, lambda _message: None, deadline)
        finally:
            disconnect(service_instance)
    except CliError as error:
        log.warning(f"cluster '{record['name']}' cannot finish deleting yet: {error}")
        return False
    return True


def _machine_plans(spec: ClusterSpec) -> list[tuple[str, str, str | None, MachineSpec]]:
    """List every VM of the cluster as (VM name, role, pool, machine spec), control plane first."""
    plans = [
        (records.new_machine_name(spec.name, None), "control-plane", None, spec.control_plane)
        for _ in range(spec.control_plane_count)
    ]
    for pool in spec.pools:
        plans += [
            (records.new_machine_name(spec.name, pool.name), "worker", pool.name, spec.worker)
            for _ in range(pool.replicas)
        ]
    return plans


@dataclass(frozen=True)
class MachineBuild:
    """One VM to build: its machine entry in the record, its size and GPU settings, its placement."""

    machine: dict
    spec: MachineSpec
    target: VSphereTarget


class InventoryCache:
    """Inventory objects per placement, resolved once per vCenter session."""

    def __init__(self, service_instance: object):
        self.service_instance = service_instance
        self.known: dict[VSphereTarget, Inventory] = {}

    def get(self, target: VSphereTarget) -> "Inventory":
        """Return the inventory of `target`. Raises VCenterError with vCenter's fault text."""
        from .vsphere import CALL_ERRORS, VCenterError, fault_text, find_inventory

        if target not in self.known:
            try:
                self.known[target] = find_inventory(self.service_instance, target)
            except CALL_ERRORS as error:
                raise VCenterError(f"reading the vCenter inventory failed: {fault_text(error)}") from None
        return self.known[target]


class MachineWriter:
    """Writer of one machine's progress into its cluster record."""

    def __init__(self, store: StateStore, namespace: str, cluster_name: str, machine_name: str):
        self.store = store
        self.namespace = namespace
        self.cluster_name = cluster_name
        self.name = machine_name

    def update(self, **fields: object) -> None:
        def mutate(record: dict) -> None:
            for machine in record["machines"]:
                if machine["name"] == self.name:
                    machine.update(fields)
                    return
            # A scale-down or node-pool change removed the machine while it was being built,
            # so its new VM is queued for deletion instead of being lost.
            if fields.get("vmId"):
                record.setdefault("pendingVmDeletions", []).append(fields["vmId"])

        update_record(self.store, self.namespace, self.cluster_name, mutate)


def _cluster_deleting(store: StateStore, namespace: str, name: str) -> bool:
    with store.locked():
        record = store.load(namespace, name)
    return record is None or record["phase"] == "deleting"


def _build_machine(
    inventory: "Inventory", writer: MachineWriter, machine: MachineSpec, log: ProgressLog, deadline: float
) -> str | None:
    """Clone, configure and power on one VM. Returns a failure description, or None."""
    from .vsphere import VCenterError, attach_pci_devices, clone_machine, power_on, upgrade_hardware

    name = writer.name
    log.info(f"cloning VM '{name}' from template '{inventory.template_name}'")
    try:
        vm = clone_machine(inventory, name, machine, deadline)
    except VCenterError as error:
        writer.update(phase="Failed", reason="CloningFailed", message=str(error))
        return str(error)
    writer.update(vmId=vm._moId)

    steps: list[tuple[str, Callable[[], object]]] = []
    version = machine.effective_hardware_version
    if version:
        steps.append(("HardwareVersionUpgradeFailed", lambda: upgrade_hardware(vm, version, deadline)))
    if machine.pci_devices:
        steps.append(("PCIDeviceAttachFailed", lambda: attach_pci_devices(vm, machine.pci_devices, deadline)))
    steps.append(("PoweringOnFailed", lambda: power_on(vm, deadline)))
    for reason, step in steps:
        try:
            step()
        except VCenterError as error:
            writer.update(phase="Failed", reason=reason, message=str(error))
            log.info(f"VM '{name}': {error}")
            return str(error)
    writer.update(phase="Running")
    log.info(f"VM '{name}' is powered on")
    return None


def build_machines(
    store: StateStore,
    namespace: str,
    cluster_name: str,
    builds: list[MachineBuild],
    inventories: InventoryCache,
    log: ProgressLog,
    deadline: float,
    add_to_record: bool,
) -> list[str]:
    """Build VMs one after another, continuing after failures as CAPI does. Returns the failures.

    Create passes `add_to_record`, so each machine entry joins the record just before its VM is
    built. Scale has already added the entries. Building stops when the cluster is being deleted.
    """
    if not builds:
        return []  # keeps pyVmomi unloaded when there is nothing to build
    from .vsphere import VCenterError

    failures: list[str] = []
    for build in builds:
        if _cluster_deleting(store, namespace, cluster_name):
            log.info(f"cluster '{cluster_name}' is being deleted; no more VMs are created")
            break
        if add_to_record:
            update_record(store, namespace, cluster_name, lambda record, entry=build.machine: record["machines"].append(entry))
        writer = MachineWriter(store, namespace, cluster_name, build.machine["name"])
        try:
            inventory = inventories.get(build.target)
        except VCenterError as error:
            writer.update(phase="Failed", reason="CloningFailed", message=str(error))
            failures.append(str(error))
            continue
        failure = _build_machine(inventory, writer, build.spec, log, deadline)
        if failure:
            failures.append(failure)
    return failures


def _warn_on_shared_endpoint(store: StateStore, spec: ClusterSpec, log: ProgressLog) -> None:
    if not spec.control_plane_endpoint:
        return
    for other in store.list():
        if other.get("controlPlaneEndpoint") == spec.control_plane_endpoint and other["phase"] != "deleting":
            log.warning(
                f"control plane endpoint '{spec.control_plane_endpoint}' is already used by cluster "
                f"'{other['name']}'; the clusters may conflict"
            )


def _raise_if_exists(store: StateStore, spec: ClusterSpec) -> None:
    if store.load(spec.namespace, spec.name) is not None:
        raise CliError(f"cluster '{spec.name}' already exists in namespace '{spec.namespace}'; choose another name")


def ensure_name_free(store: StateStore, spec: ClusterSpec, log: ProgressLog, environ: dict[str, str]) -> None:
    """Raise CliError when the cluster exists. Like TKG, create checks this before vSphere."""
    with store.locked():
        reconcile(store, log, environ)
        _raise_if_exists(store, spec)
    planes = planes_from_env(environ, store.root)
    if planes is not None:
        planes.check_name_free(spec.namespace, spec.name)


def _unregister_cluster(store: StateStore, spec: ClusterSpec, environ: dict[str, str]) -> None:
    """Undo _register_cluster after the CAPI objects could not be written, before any VM exists."""
    with store.locked():
        record = store.load(spec.namespace, spec.name)
        store.remove(spec.namespace, spec.name)
    planes = planes_from_env(environ, store.root)
    if planes is not None and record is not None:
        try:
            planes.remove(record)
        except PlaneError:
            pass  # the error that made create fail is reported instead


def _register_cluster(
    store: StateStore, spec: ClusterSpec, connection: Connection, log: ProgressLog, environ: dict[str, str]
) -> None:
    """Save the new record, checking the name again under the lock in case of concurrent creates."""
    with store.locked():
        reconcile(store, log, environ)
        _raise_if_exists(store, spec)
        _warn_on_shared_endpoint(store, spec, log)
        store.save(records.new_record(spec, connection, environ))


def create_cluster(
    spec: ClusterSpec,
    credentials: VSphereCredentials,
    store: StateStore,
    log: ProgressLog,
    timeout_seconds: float,
    environ: dict[str, str] | None = None,
) -> None:
    """Create the cluster's VMs and record the cluster. Raises CliError when it fails."""
    from .vsphere import connect, disconnect

    environ = dict(os.environ) if environ is None else environ
    deadline = time.monotonic() + timeout_seconds
    connection = Connection(spec.vsphere.server, spec.vsphere.insecure, spec.vsphere.thumbprint)
    service_instance = connect(connection, credentials)
    try:
        inventories = InventoryCache(service_instance)
        inventories.get(spec.vsphere)  # an unknown inventory object fails before anything is recorded
        _register_cluster(store, spec, connection, log, environ)
        try:
            sync_planes(store, spec.namespace, spec.name, environ)
        except PlaneError:
            _unregister_cluster(store, spec, environ)
            raise
        log.info(f"creating workload cluster '{spec.name}'...")
        builds = [
            MachineBuild(records.new_machine(vm_name, role, pool), machine, spec.vsphere)
            for vm_name, role, pool, machine in _machine_plans(spec)
        ]
        failures = build_machines(store, spec.namespace, spec.name, builds, inventories, log, deadline, add_to_record=True)
        planned = len(builds)
    finally:
        disconnect(service_instance)

    _finish_create(store, spec, failures)
    sync_planes(store, spec.namespace, spec.name, environ)
    if failures:
        raise CliError(
            f"workload cluster '{spec.name}' was not created: {len(failures)} of {planned} machines "
            f"failed; first failure: {failures[0]}. The cluster stays in status createStalled until "
            f"you run 'tanzu cluster delete {spec.name}'"
        )
    log.info(f"\nWorkload cluster '{spec.name}' created\n")


def _finish_create(store: StateStore, spec: ClusterSpec, failures: list[str]) -> None:
    def mutate(record: dict) -> None:
        record["createFinished"] = True
        record["createFinishedAt"] = now_iso()
        if failures:
            record["lastError"] = failures[0]
        if record["phase"] == "creating":
            record["phase"] = "createStalled" if failures else "running"

    update_record(store, spec.namespace, spec.name, mutate)
