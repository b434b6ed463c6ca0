"""Cluster records: creation from a ClusterSpec, derived status, and the CAPI-shaped views.

A record is a JSON object that state.py stores. Its fields:
- name, namespace, uid, and phase (creating, running, createStalled, updating or deleting).
- createdAt, createdEpoch, creatorPid and createFinished, written by `cluster create`.
- scalePid: id of the `cluster scale` process that is building VMs, present only meanwhile.
- deleteRequestedAt and deleteRequestedEpoch, written by `cluster delete`.
- plan, tkr, kubernetesVersion, labels, annotations, controlPlaneEndpoint, workloadServer,
  workerRolloutStrategy.
- createFinishedAt and lastError (the first machine failure), written when create ends.
- topology: spec.topology of the class-based Cluster.
- clusterNetwork: spec.clusterNetwork of the Cluster (pod and service CIDRs).
- vcenter: server, insecure and thumbprint, without credentials.
- machines: one entry per VM with name, role, pool, vmId, phase, reason, message,
  simulated and createdAt.
- objectSuffixes: random suffixes of the generated CAPI object names.
- pendingVmDeletions: VM ids to destroy at the next reconcile.
"""

from __future__ import annotations

import os
import secrets
import time
import uuid

from .endpoint import Connection
from .render import build_topology, cluster_annotations, cluster_network
from .state import now_iso, process_alive
from .validation import ClusterSpec

# Alphabet of Kubernetes' generated name suffixes (k8s.io/apimachinery utilrand).
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
DEFAULT_WORKLOAD_SERVER = "https://127.0.0.1:6443"
WORKLOAD_SERVER_VARIABLE = "TANZU_DOUBLE_WORKLOAD_SERVER"


def random_suffix(length: int = 5) -> str:
    return "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(length))


def new_record(spec: ClusterSpec, connection: Connection, environ: dict[str, str] | None = None) -> dict:
    environ = os.environ if environ is None else environ
    created = time.time()
    pools = [pool.name for pool in spec.pools]
    return {
        "name": spec.name,
        "namespace": spec.namespace,
        "uid": str(uuid.uuid4()),
        "phase": "creating",
        "createdAt": now_iso(created),
        "createdEpoch": created,
        "creatorPid": os.getpid(),
        "createFinished": False,
        "plan": spec.plan,
        "tkr": spec.tkr,
        "kubernetesVersion": spec.kubernetes_version,
        "labels": {
            "cluster.x-k8s.io/cluster-name": spec.name,
            "run.tanzu.vmware.com/tkr": spec.tkr,
            "tkg.tanzu.vmware.com/cluster-name": spec.name,
        },
        "annotations": cluster_annotations(spec),
        "controlPlaneEndpoint": spec.control_plane_endpoint,
        "workloadServer": environ.get(WORKLOAD_SERVER_VARIABLE) or DEFAULT_WORKLOAD_SERVER,
        "workerRolloutStrategy": spec.worker_rollout_strategy,
        "topology": build_topology(spec),
        "clusterNetwork": cluster_network(spec),
        "vcenter": connection.to_record(),
        "machines": [],
        "objectSuffixes": {"cluster": random_suffix(), **{pool: random_suffix() for pool in pools}},
        "pendingVmDeletions": [],
        "lastError": None,
    }


def new_machine_name(cluster_name: str, pool: str | None) -> str:
    """Name a new VM like CAPI names Machines: control-plane machines without a pool, workers by pool."""
    middle = "control-plane" if pool is None else pool
    return f"{cluster_name}-{middle}-{random_suffix()}"


def new_machine(name: str, role: str, pool: str | None, simulated: bool = False) -> dict:
    return {
        "name": name,
        "role": role,
        "pool": pool,
        "vmId": None,
        "phase": "Running" if simulated else "Provisioning",
        "reason": "",
        "message": "",
        "simulated": simulated,
        "createdAt": now_iso(),
    }


def cluster_status(record: dict) -> str:
    """Status as `tanzu cluster list` shows it.

    A create whose process ended without finishing (killed, crashed) reads as createStalled.
    """
    phase = record["phase"]
    if phase == "creating" and not record.get("createFinished") and not process_alive(record["creatorPid"]):
        return "createStalled"
    return phase


def create_in_progress(record: dict) -> bool:
    return not record.get("createFinished") and process_alive(record.get("creatorPid", 0))


def scale_in_progress(record: dict) -> bool:
    return bool(record.get("scalePid")) and process_alive(record["scalePid"])


def machine_deployments(record: dict) -> list[dict]:
    return record["topology"]["workers"]["machineDeployments"]


def pool_machines(record: dict, pool: str) -> list[dict]:
    return [machine for machine in record["machines"] if machine["role"] == "worker" and machine["pool"] == pool]


def control_plane_machines(record: dict) -> list[dict]:
    return [machine for machine in record["machines"] if machine["role"] == "control-plane"]


def control_plane_replicas(record: dict) -> int:
    return int(record["topology"]["controlPlane"]["replicas"])


def topology_variable(record: dict, name: str) -> dict | None:
    """Return the cluster-wide entry {name, value} of a topology variable, or None."""
    for variable in record["topology"].get("variables", []):
        if variable["name"] == name:
            return variable
    return None


def pool_variable_value(record: dict, deployment: dict, name: str) -> object:
    """Return the value of a variable for one pool: its override, else the cluster-wide value."""
    for variable in (deployment.get("variables") or {}).get("overrides") or []:
        if variable["name"] == name:
            return variable.get("value")
    cluster_value = topology_variable(record, name)
    return cluster_value.get("value") if cluster_value else None


def machines_settled(record: dict) -> bool:
    """Return whether every machine runs and each group has exactly its desired count."""
    if any(machine["phase"] != "Running" for machine in record["machines"]):
        return False
    if len(control_plane_machines(record)) != control_plane_replicas(record):
        return False
    return all(
        len(pool_machines(record, deployment["name"])) == int(deployment.get("replicas", 0))
        for deployment in machine_deployments(record)
    )


def remove_surplus_machines(record: dict, machines: list[dict], surplus: int, newest_first: bool = True) -> list[dict]:
    """Remove `surplus` of `machines` from the record and queue their VMs for deletion.

    Simulated machines go first, then machines that are not Running (Cluster API also deletes
    unhealthy machines first), then by age. Node pools lose their newest machines, a stand-in
    for the MachineSet's random choice. The control plane loses its oldest ones, as
    KubeadmControlPlane does. Returns the removed machines.
    """
    by_age = sorted(machines, key=lambda machine: machine["createdAt"], reverse=newest_first)
    ordered = sorted(by_age, key=lambda machine: (not machine.get("simulated"), machine["phase"] == "Running"))
    removed = ordered[: max(surplus, 0)]
    for machine in removed:
        record["machines"].remove(machine)
        if machine.get("vmId"):
            record.setdefault("pendingVmDeletions", []).append(machine["vmId"])
    return removed


def control_plane_count(record: dict) -> str:
    desired = control_plane_replicas(record)
    ready = sum(1 for machine in control_plane_machines(record) if machine["phase"] == "Running")
    return f"{ready}/{desired}"


def worker_count(record: dict) -> str:
    """`ready/desired` over all pools, or "" when no workers are desired (as TKG prints it)."""
    desired = sum(int(deployment.get("replicas", 0)) for deployment in machine_deployments(record))
    if desired == 0:
        return ""
    ready = sum(
        1 for machine in record["machines"] if machine["role"] == "worker" and machine["phase"] == "Running"
    )
    return f"{ready}/{desired}"


def control_plane_ready(record: dict) -> bool:
    return any(machine["phase"] == "Running" for machine in control_plane_machines(record))


def cluster_roles(record: dict) -> list[str]:
    prefix = "cluster-role.tkg.tanzu.vmware.com/"
    return sorted(key[len(prefix) :] for key in record.get("labels", {}) if key.startswith(prefix))


def cluster_info(record: dict) -> dict:
    """Return the ClusterInfo object of `tanzu cluster list -o json`, keys in TKG's order."""
    return {
        "name": record["name"],
        "namespace": record["namespace"],
        "status": cluster_status(record),
        "plan": record.get("plan", ""),
        "controlplane": control_plane_count(record),
        "workers": worker_count(record),
        "kubernetes": record.get("kubernetesVersion", ""),
        "roles": cluster_roles(record),
        "tkr": record.get("tkr", ""),
        "labels": dict(sorted(record.get("labels", {}).items())),
    }


def _deployment_phase(desired: int, ready: int) -> str:
    if desired == ready:
        return "Running"
    return "ScalingUp" if desired > ready else "ScalingDown"


def machine_deployment_object(record: dict, deployment: dict) -> dict:
    """Build the CAPI v1beta1 MachineDeployment that `node-pool list -o json` prints for a pool.

    As in TKG, metadata.name is the topology pool name (for example md-0), not the generated
    object name.
    """
    name = record["name"]
    pool = deployment["name"]
    machines = pool_machines(record, pool)
    desired = int(deployment.get("replicas", 0))
    ready = sum(1 for machine in machines if machine["phase"] == "Running")
    existing = len(machines)
    suffix = record.get("objectSuffixes", {}).get(pool, "xxxxx")
    labels = {
        "cluster.x-k8s.io/cluster-name": name,
        "topology.cluster.x-k8s.io/deployment-name": pool,
        "topology.cluster.x-k8s.io/owned": "",
    }
    strategy = deployment.get("strategy") or {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    template_spec: dict[str, object] = {
        "clusterName": name,
        "bootstrap": {
            "configRef": {
                "kind": "KubeadmConfigTemplate",
                "namespace": record["namespace"],
                "name": f"{name}-{pool}-bootstrap-{suffix}",
                "apiVersion": "bootstrap.cluster.x-k8s.io/v1beta1",
            }
        },
        "infrastructureRef": {
            "kind": "VSphereMachineTemplate",
            "namespace": record["namespace"],
            "name": f"{name}-{pool}-infra-{suffix}",
            "apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1",
        },
        "version": record.get("kubernetesVersion", ""),
    }
    if deployment.get("failureDomain"):
        template_spec["failureDomain"] = deployment["failureDomain"]
    condition_status = "True" if ready == desired else "False"
    transition = max([record["createdAt"]] + [machine["createdAt"] for machine in machines])
    return {
        "kind": "MachineDeployment",
        "apiVersion": "cluster.x-k8s.io/v1beta1",
        "metadata": {
            "name": pool,
            "namespace": record["namespace"],
            "uid": str(uuid.uuid5(uuid.UUID(record["uid"]), pool)),
            "generation": 1,
            "creationTimestamp": record["createdAt"],
            "labels": labels,
            "annotations": {"machinedeployment.clusters.x-k8s.io/revision": "1"},
        },
        "spec": {
            "clusterName": name,
            "replicas": desired,
            "selector": {"matchLabels": dict(labels)},
            "template": {"metadata": {"labels": dict(labels)}, "spec": template_spec},
            "strategy": strategy,
            "minReadySeconds": 0,
            "revisionHistoryLimit": 1,
            "progressDeadlineSeconds": 600,
        },
        "status": {
            "selector": ",".join(f"{key}={value}" for key, value in labels.items()),
            "replicas": existing,
            "updatedReplicas": existing,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": max(existing, desired) - ready,
            "phase": _deployment_phase(desired, ready),
            "observedGeneration": 1,
            "conditions": [
                {"type": "Ready", "status": condition_status, "lastTransitionTime": transition},
                {"type": "Available", "status": condition_status, "lastTransitionTime": transition},
            ],
        },
    }
