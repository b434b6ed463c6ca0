"""`tanzu cluster scale`: new replica counts for the control plane and the node pools.

The counting rules follow the class-based path of TKG at tanzu-framework v0.29.0
(tkg/tkgctl/scale_cluster.go, and DoScaleCCCluster in tkg/client/scale.go):
- A count of 0 or less leaves its part unchanged, but at least one count must be above 0.
- With -p/--node-pool-name, -w sets the replicas of that pool only. Without it, -w is spread
  over all pools in their order, and the first pools take one more each for the remainder, so
  -w must be at least the number of pools.
- -p without -w changes no pool.

TKG returns as soon as the Cluster object is updated. The double blocks instead, like its
create. It builds one VM per new machine through the create code path, with the size, custom
VMX keys, PCI devices and hardware version stored in the cluster's topology. A VM that cannot
start fails the command with vCenter's fault text. Surplus machines leave the record at once,
and their VMs go to pendingVmDeletions, which the next invocation's reconcile() destroys.
When the environment names the lab's Kubernetes clusters, the CAPI objects and Nodes follow the
new counts before the command returns (planes.py).
New VMs need the vCenter login in TANZU_DOUBLE_VSPHERE_USERNAME and
TANZU_DOUBLE_VSPHERE_PASSWORD. A scale-down needs it only when the queued VMs are destroyed.
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import dataclass

from . import records
from .endpoint import Connection
from .errors import CliError
from .lifecycle import (
    MANAGEMENT_PASSWORD_VARIABLE,
    MANAGEMENT_USERNAME_VARIABLE,
    InventoryCache,
    MachineBuild,
    build_machines,
    credentials_from_env,
    sync_planes,
    update_record,
)
from .progress import ProgressLog
from .render import machine_spec_from_variables, vsphere_target_from_variable
from .state import StateStore

# The double's own limit for building the new VMs; TKG's scale does not wait for machines.
SCALE_TIMEOUT_SECONDS = 30 * 60


@dataclass(frozen=True)
class ScaleRequest:
    """The flags of one `cluster scale` call; a count of 0 or less means unchanged."""

    worker_count: int
    control_plane_count: int
    pool_name: str


def validate_request(request: ScaleRequest) -> None:
    """Check the counts before any state or vCenter is read, as TKG does."""
    if request.worker_count <= 0 and request.control_plane_count <= 0:
        raise CliError(
            "invalid machine counts: set -w/--worker-machine-count or -c/--controlplane-machine-count "
            "to a number greater than 0"
        )
    # NOTE: in a management cluster this check belongs to Cluster API's KubeadmControlPlane
    # validation ("cannot be an even number when etcd is stacked"). The double rejects the count
    # up front; whether TKG 2.x reports it to `scale` itself was not verified.
    if request.control_plane_count > 0 and request.control_plane_count % 2 == 0:
        raise CliError(
            f"invalid control plane machine count {request.control_plane_count}: use an odd number, "
            "because etcd runs on the control plane machines"
        )


def _find_deployment(record: dict, pool: str) -> dict | None:
    return next((item for item in records.machine_deployments(record) if item["name"] == pool), None)


def _deployment(record: dict, pool: str) -> dict:
    deployment = _find_deployment(record, pool)
    if deployment is None:
        raise CliError(f"node pool '{pool}' not found in cluster '{record['name']}'")
    return deployment


def desired_replicas(record: dict, request: ScaleRequest) -> dict[str | None, int]:
    """Map the groups to change to their new replica counts; the key None is the control plane."""
    desired: dict[str | None, int] = {}
    if request.control_plane_count > 0:
        desired[None] = request.control_plane_count
    if request.worker_count <= 0:
        return desired

    if request.pool_name:
        _deployment(record, request.pool_name)
        desired[request.pool_name] = request.worker_count
        return desired

    deployments = records.machine_deployments(record)
    if not deployments:
        raise CliError(f"cluster '{record['name']}' has no node pools to scale")
    if request.worker_count < len(deployments):
        raise CliError(
            f"invalid worker machine count {request.worker_count}: cluster '{record['name']}' has "
            f"{len(deployments)} node pools and each keeps at least one worker; pass at least "
            f"{len(deployments)}, or name one pool with -p/--node-pool-name"
        )
    per_pool, remainder = divmod(request.worker_count, len(deployments))
    for index, deployment in enumerate(deployments):
        desired[deployment["name"]] = per_pool + (1 if index < remainder else 0)
    return desired


def apply_replicas(record: dict, desired: dict[str | None, int]) -> tuple[list[dict], list[dict]]:
    """Set the new counts in the topology and match the machines to them.

    New machines are appended in phase Provisioning, without a VM yet. Surplus machines are
    removed and their VMs queued for deletion. Returns (added machines, removed machines).
    """
    added: list[dict] = []
    removed: list[dict] = []
    for pool, replicas in desired.items():
        if pool is None:
            record["topology"]["controlPlane"]["replicas"] = replicas
            machines = records.control_plane_machines(record)
            role = "control-plane"
        else:
            _deployment(record, pool)["replicas"] = replicas
            machines = records.pool_machines(record, pool)
            role = "worker"
        missing = replicas - len(machines)
        for _ in range(missing):
            machine = records.new_machine(records.new_machine_name(record["name"], pool), role, pool)
            record["machines"].append(machine)
            added.append(machine)
        if missing < 0:
            removed += records.remove_surplus_machines(record, machines, -missing, newest_first=pool is not None)
    return added, removed


def _map_value(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _cluster_value(record: dict, name: str) -> dict:
    variable = records.topology_variable(record, name)
    return _map_value(variable.get("value") if variable else None)


def machine_build(record: dict, machine: dict) -> MachineBuild:
    """Describe the VM of a new machine from the topology, honouring a pool's variable overrides."""
    connection = Connection.from_record(record["vcenter"])
    pool = machine["pool"]
    if pool is None:
        machine_value = _cluster_value(record, "controlPlane")["machine"]
        pci_role = _cluster_value(record, "pci").get("controlPlane")
        vcenter = _cluster_value(record, "vcenter")
    else:
        deployment = _deployment(record, pool)
        machine_value = _map_value(records.pool_variable_value(record, deployment, "worker"))["machine"]
        pci_role = _map_value(records.pool_variable_value(record, deployment, "pci")).get("worker")
        vcenter = _map_value(records.pool_variable_value(record, deployment, "vcenter"))
    server = vcenter.get("server")
    if server and server != connection.server:
        raise CliError(
            f"node pool '{pool}' of cluster '{record['name']}' is placed in vCenter {server!r}, but the "
            f"tanzu test double only builds VMs in the cluster's vCenter {connection.server!r}"
        )
    return MachineBuild(machine, machine_spec_from_variables(machine_value, pci_role), vsphere_target_from_variable(vcenter, connection))


def _load_scalable(store: StateStore, namespace: str, name: str) -> dict:
    """Load the record, rejecting clusters that are missing, being deleted or busy. Needs the lock."""
    record = store.load(namespace, name)
    if record is None:
        raise CliError(f"cluster '{name}' not found in namespace '{namespace}'")
    if record["phase"] == "deleting":
        raise CliError(f"cluster '{name}' is being deleted")
    if records.create_in_progress(record):
        raise CliError(f"cluster '{name}' is still being created; scale it after 'tanzu cluster create' has returned")
    if records.scale_in_progress(record):
        raise CliError(
            f"cluster '{name}' is already being scaled by process {record['scalePid']}; "
            "run the command again after that process has finished"
        )
    return record


def _settled_phase(record: dict, previous_status: str) -> str:
    """Phase once no VM is being built. TKG reports a cluster whose counts differ as updating."""
    if records.machines_settled(record):
        return "running"
    if previous_status in ("creating", "createStalled"):
        return "createStalled"
    return "updating"


def _log_changes(log: ProgressLog, before: dict[str | None, int], desired: dict[str | None, int], removed: list[dict]) -> None:
    for pool, replicas in desired.items():
        group = "control plane" if pool is None else f"node pool '{pool}'"
        log.info(f"{group}: {before[pool]} -> {replicas} machines")
    for machine in removed:
        if machine.get("vmId"):
            log.info(f"machine '{machine['name']}' removed; its VM is queued for deletion")
        else:
            log.info(f"machine '{machine['name']}' removed")


def _reserve(
    store: StateStore, namespace: str, name: str, request: ScaleRequest, connected: bool, log: ProgressLog
) -> tuple[list[MachineBuild], str]:
    """Apply the new counts under the lock and return (VMs to build, cluster status before)."""
    with store.locked():
        record = _load_scalable(store, namespace, name)
        previous_status = records.cluster_status(record)
        desired = desired_replicas(record, request)
        before = {
            pool: records.control_plane_replicas(record) if pool is None else int(_deployment(record, pool).get("replicas", 0))
            for pool in desired
        }
        added, removed = apply_replicas(record, desired)
        builds = [machine_build(record, machine) for machine in added]
        if builds and not connected:
            raise CliError(f"cluster '{name}' changed while this command was starting; run the command again")
        if builds:
            record["phase"] = "updating"
            record["scalePid"] = os.getpid()
        else:
            record["phase"] = _settled_phase(record, previous_status)
        store.save(record)
    _log_changes(log, before, desired, removed)
    return builds, previous_status


def _preview_targets(store: StateStore, namespace: str, name: str, request: ScaleRequest) -> tuple[dict, set]:
    """Return the record and the placements of the VMs the request would add, changing nothing."""
    with store.locked():
        record = _load_scalable(store, namespace, name)
    preview = copy.deepcopy(record)
    added, _removed = apply_replicas(preview, desired_replicas(preview, request))
    return record, {machine_build(preview, machine).target for machine in added}


def _finish_scale(store: StateStore, namespace: str, name: str, previous_status: str, failures: list[str]) -> dict | None:
    def mutate(record: dict) -> None:
        record.pop("scalePid", None)
        if failures:
            record["lastError"] = failures[0]
        if record["phase"] != "deleting":
            record["phase"] = _settled_phase(record, previous_status)

    return update_record(store, namespace, name, mutate)


def scale_cluster(
    store: StateStore, namespace: str, name: str, request: ScaleRequest, log: ProgressLog, environ: dict[str, str]
) -> None:
    """Scale the cluster and build its new VMs. Raises CliError when the scale fails."""
    deadline = time.monotonic() + SCALE_TIMEOUT_SECONDS
    record, targets = _preview_targets(store, namespace, name, request)

    # Log in and resolve the inventory before the record changes, so a bad login or a missing
    # template leaves the cluster as it was.
    service_instance = None
    if targets:
        credentials = credentials_from_env(environ)
        if credentials is None:
            raise CliError(
                f"cannot add machines to cluster '{name}': set {MANAGEMENT_USERNAME_VARIABLE} and "
                f"{MANAGEMENT_PASSWORD_VARIABLE} so the test double can log in to vCenter"
            )
        from .vsphere import connect

        service_instance = connect(Connection.from_record(record["vcenter"]), credentials)
    try:
        inventories = InventoryCache(service_instance)
        for target in targets:
            inventories.get(target)
        log.info(f"scaling workload cluster '{name}'...")
        builds, previous_status = _reserve(store, namespace, name, request, service_instance is not None, log)
        failures = build_machines(store, namespace, name, builds, inventories, log, deadline, add_to_record=False)
    finally:
        if service_instance is not None:
            from .vsphere import disconnect

            disconnect(service_instance)

    final = _finish_scale(store, namespace, name, previous_status, failures)
    if final is None or final["phase"] == "deleting":
        raise CliError(f"cluster '{name}' was deleted while it was being scaled")
    sync_planes(store, namespace, name, environ)
    if failures:
        raise CliError(
            f"workload cluster '{name}' was not fully scaled: {len(failures)} of {len(builds)} new machines "
            f"failed; first failure: {failures[0]}. The failed machines stay in the cluster until you "
            f"scale it down or run 'tanzu cluster delete {name}'"
        )
    log.info(f"Workload cluster '{name}' is being scaled")
