"""Cluster API objects of a cluster record, as the double writes them into a management cluster.

The shapes follow Cluster API v1beta1 (cluster.x-k8s.io and controlplane.cluster.x-k8s.io) as TKG
2.x runs it for a class-based cluster. The objects are the `Cluster` with `spec.topology` that render.py builds,
a KubeadmControlPlane named `<cluster>-<suffix>`, one MachineDeployment per node pool named
`<cluster>-<pool>-<suffix>`, and the Secret `<cluster>-kubeconfig` of type
`cluster.x-k8s.io/secret` whose key `value` contains the admin kubeconfig of the workload cluster.
The suffixes are the record's `objectSuffixes`, so the names match the `cluster get` tree.

Every builder is a pure function of the record. `status` is part of each object. planes.py
writes it through the status subresource when the API server serves one.
"""

from __future__ import annotations

import base64
import copy

import yaml

from . import records

CLUSTER_API_VERSION = "cluster.x-k8s.io/v1beta1"
CONTROL_PLANE_API_VERSION = "controlplane.cluster.x-k8s.io/v1beta1"
INFRASTRUCTURE_API_VERSION = "infrastructure.cluster.x-k8s.io/v1beta1"
CLUSTER_NAME_LABEL = "cluster.x-k8s.io/cluster-name"
CONTROL_PLANE_LABEL = "cluster.x-k8s.io/control-plane"
DEPLOYMENT_NAME_LABEL = "topology.cluster.x-k8s.io/deployment-name"
TOPOLOGY_OWNED_LABEL = "topology.cluster.x-k8s.io/owned"
KUBECONFIG_SECRET_TYPE = "cluster.x-k8s.io/secret"
KUBECONFIG_SECRET_KEY = "value"
# Port of the control plane endpoint. TKG on vSphere serves the API on 6443 behind kube-vip.
CONTROL_PLANE_PORT = 6443
# TKG's defaults for CLUSTER_CIDR and SERVICE_CIDR, for records written before clusterNetwork was stored.
DEFAULT_CLUSTER_NETWORK = {
    "pods": {"cidrBlocks": ["100.96.0.0/11"]},
    "services": {"cidrBlocks": ["100.64.0.0/13"]},
}


def _suffix(record: dict, key: str) -> str:
    return record.get("objectSuffixes", {}).get(key, "xxxxx")


def control_plane_name(record: dict) -> str:
    return f"{record['name']}-{_suffix(record, 'cluster')}"


def infrastructure_cluster_name(record: dict) -> str:
    return f"{record['name']}-{_suffix(record, 'cluster')}"


def machine_deployment_name(record: dict, pool: str) -> str:
    return f"{record['name']}-{pool}-{_suffix(record, pool)}"


def kubeconfig_secret_name(cluster: str) -> str:
    return f"{cluster}-kubeconfig"


def owner_reference(owner: dict, controller: bool = True) -> dict:
    """Return an ownerReference to a live object (one read from the API server, so it has a uid)."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": controller,
        "blockOwnerDeletion": True,
    }


def _condition(condition_type: str, ready: bool, since: str, reason: str = "WaitingForMachines") -> dict:
    """Return a CAPI v1beta1 condition. A false one gets severity Info and `reason`."""
    condition = {"type": condition_type, "status": "True" if ready else "False", "lastTransitionTime": since}
    if not ready:
        condition.update(severity="Info", reason=reason)
    return condition


def _latest_change(record: dict, machines: list[dict]) -> str:
    return max([record["createdAt"]] + [machine["createdAt"] for machine in machines])


def cluster_phase(record: dict) -> str:
    """CAPI Cluster phase: Deleting, Provisioning until a control plane machine runs, then Provisioned."""
    if record["phase"] == "deleting":
        return "Deleting"
    if records.control_plane_ready(record):
        return "Provisioned"
    return "Provisioning"


def cluster_status(record: dict) -> dict:
    control_plane_ready = records.control_plane_ready(record)
    since = _latest_change(record, records.control_plane_machines(record))
    return {
        "phase": cluster_phase(record),
        "infrastructureReady": True,
        "controlPlaneReady": control_plane_ready,
        "conditions": [
            _condition("Ready", control_plane_ready, since, "WaitingForControlPlane"),
            _condition("ControlPlaneInitialized", control_plane_ready, since, "WaitingForControlPlaneProviderInitialized"),
            _condition("ControlPlaneReady", control_plane_ready, since, "WaitingForControlPlane"),
            _condition("InfrastructureReady", True, record["createdAt"]),
            _condition("TopologyReconciled", True, record["createdAt"]),
        ],
    }


def cluster_object(record: dict) -> dict:
    """Return the class-based Cluster of the record, with the topology that render.py built at create."""
    name = record["name"]
    namespace = record["namespace"]
    spec: dict[str, object] = {
        "clusterNetwork": copy.deepcopy(record.get("clusterNetwork") or DEFAULT_CLUSTER_NETWORK),
        "controlPlaneRef": {
            "apiVersion": CONTROL_PLANE_API_VERSION,
            "kind": "KubeadmControlPlane",
            "name": control_plane_name(record),
            "namespace": namespace,
        },
        "infrastructureRef": {
            "apiVersion": INFRASTRUCTURE_API_VERSION,
            "kind": "VSphereCluster",
            "name": infrastructure_cluster_name(record),
            "namespace": namespace,
        },
        "topology": copy.deepcopy(record["topology"]),
    }
    if record.get("controlPlaneEndpoint"):
        spec["controlPlaneEndpoint"] = {"host": record["controlPlaneEndpoint"], "port": CONTROL_PLANE_PORT}
    return {
        "apiVersion": CLUSTER_API_VERSION,
        "kind": "Cluster",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(record.get("labels", {})),
            "annotations": dict(record.get("annotations", {})),
        },
        "spec": spec,
        "status": cluster_status(record),
    }


def kubeadm_control_plane_object(record: dict, cluster_owner: dict | None) -> dict:
    """Return the KubeadmControlPlane of the record. `cluster_owner` is the live Cluster, if known."""
    name = record["name"]
    namespace = record["namespace"]
    machines = records.control_plane_machines(record)
    desired = records.control_plane_replicas(record)
    ready = sum(1 for machine in machines if machine["phase"] == "Running")

    labels = {CLUSTER_NAME_LABEL: name, TOPOLOGY_OWNED_LABEL: ""}
    metadata: dict[str, object] = {"name": control_plane_name(record), "namespace": namespace, "labels": labels}
    if cluster_owner is not None:
        metadata["ownerReferences"] = [owner_reference(cluster_owner)]
    version = record.get("kubernetesVersion", "")
    since = _latest_change(record, machines)

    return {
        "apiVersion": CONTROL_PLANE_API_VERSION,
        "kind": "KubeadmControlPlane",
        "metadata": metadata,
        "spec": {
            "replicas": desired,
            "version": version,
            "machineTemplate": {
                "metadata": {"labels": dict(labels)},
                "infrastructureRef": {
                    "apiVersion": INFRASTRUCTURE_API_VERSION,
                    "kind": "VSphereMachineTemplate",
                    "name": f"{name}-control-plane-{_suffix(record, 'cluster')}",
                    "namespace": namespace,
                },
            },
            "kubeadmConfigSpec": {"clusterConfiguration": {}, "initConfiguration": {}, "joinConfiguration": {}},
            "rolloutStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
        },
        "status": {
            "selector": f"{CLUSTER_NAME_LABEL}={name},{CONTROL_PLANE_LABEL}",
            "replicas": len(machines),
            "updatedReplicas": len(machines),
            "readyReplicas": ready,
            "unavailableReplicas": len(machines) - ready,
            "initialized": ready > 0,
            "ready": ready > 0,
            "version": version,
            "conditions": [
                _condition("Ready", ready == desired, since, "ScalingUp" if ready < desired else "ScalingDown"),
                _condition("Available", ready > 0, since, "WaitingForKubeadmInit"),
            ],
        },
    }


def machine_deployment_object(record: dict, deployment: dict, cluster_owner: dict | None) -> dict:
    """Return the MachineDeployment of one node pool under its generated name.

    The body is the one `node-pool list` prints (records.machine_deployment_object), without the
    fields that the API server assigns (uid, creationTimestamp, generation).
    """
    item = records.machine_deployment_object(record, deployment)
    metadata = item["metadata"]
    for key in ("uid", "creationTimestamp", "generation"):
        metadata.pop(key, None)
    metadata["name"] = machine_deployment_name(record, deployment["name"])
    if cluster_owner is not None:
        metadata["ownerReferences"] = [owner_reference(cluster_owner, controller=False)]
    item["status"].pop("observedGeneration", None)
    return item


def machine_deployment_objects(record: dict, cluster_owner: dict | None) -> list[dict]:
    return [machine_deployment_object(record, item, cluster_owner) for item in records.machine_deployments(record)]


def kubeconfig_secret_object(record: dict, kubeconfig: dict, control_plane_owner: dict | None) -> dict:
    """Return the Secret `<cluster>-kubeconfig` that contains `kubeconfig` as YAML in key `value`."""
    metadata: dict[str, object] = {
        "name": kubeconfig_secret_name(record["name"]),
        "namespace": record["namespace"],
        "labels": {CLUSTER_NAME_LABEL: record["name"]},
    }
    if control_plane_owner is not None:
        metadata["ownerReferences"] = [owner_reference(control_plane_owner)]
    text = yaml.safe_dump(kubeconfig, default_flow_style=False, sort_keys=False)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": KUBECONFIG_SECRET_TYPE,
        "metadata": metadata,
        "data": {KUBECONFIG_SECRET_KEY: base64.b64encode(text.encode("utf-8")).decode("ascii")},
    }
