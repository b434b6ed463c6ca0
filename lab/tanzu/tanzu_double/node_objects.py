"""Node objects of a cluster record, as the double writes them into the lab's workload cluster.

Each running machine becomes one Node named after its VM. The annotation
`kwok.x-k8s.io/node: fake` hands the Node to kwok, which marks it Ready and keeps the capacity
written here. The CAPI annotations (cluster name and namespace, machine) let the double find
the Nodes of one cluster again. CPU and memory come from the machine size in the topology, and
`nvidia.com/gpu` counts the NVIDIA devices (vendor 0x10DE) in the machine's `pci` variable, the
GPUs that the GPU Operator's device plugin would advertise.
"""

from __future__ import annotations

from . import records
from .render import machine_spec_from_variables
from .validation import MachineSpec

KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
CLUSTER_NAME_ANNOTATION = "cluster.x-k8s.io/cluster-name"
CLUSTER_NAMESPACE_ANNOTATION = "cluster.x-k8s.io/cluster-namespace"
MACHINE_ANNOTATION = "cluster.x-k8s.io/machine"
CONTROL_PLANE_ROLE = "node-role.kubernetes.io/control-plane"
POOL_LABEL = "node.cluster.x-k8s.io/pool"
# Label that Node Feature Discovery sets for a PCI device of vendor 0x10DE (NVIDIA).
NVIDIA_PCI_LABEL = "feature.node.kubernetes.io/pci-10de.present"
GPU_RESOURCE = "nvidia.com/gpu"
NVIDIA_VENDOR_ID = 0x10DE
# The kubelet's default --max-pods.
MAX_PODS = 110


def machine_spec(record: dict, machine: dict) -> MachineSpec | None:
    """Return the size and PCI devices of a machine from the topology, or None when its pool is gone."""
    if machine["role"] == "control-plane":
        machine_value = (records.topology_variable(record, "controlPlane") or {}).get("value") or {}
        pci_value = (records.topology_variable(record, "pci") or {}).get("value") or {}
        role_pci = pci_value.get("controlPlane") if isinstance(pci_value, dict) else None
    else:
        deployment = next(
            (item for item in records.machine_deployments(record) if item["name"] == machine["pool"]), None
        )
        if deployment is None:
            return None
        machine_value = records.pool_variable_value(record, deployment, "worker") or {}
        pci_value = records.pool_variable_value(record, deployment, "pci") or {}
        role_pci = pci_value.get("worker") if isinstance(pci_value, dict) else None
    size = machine_value.get("machine") if isinstance(machine_value, dict) else None
    if not isinstance(size, dict):
        return None
    return machine_spec_from_variables(size, role_pci if isinstance(role_pci, dict) else None)


def gpu_count(spec: MachineSpec) -> int:
    return sum(1 for device in spec.pci_devices if device.vendor_id == NVIDIA_VENDOR_ID)


def _os_image(record: dict) -> str:
    """Return the OS image as a kubelet reports it, from the Cluster's osInfo annotation (name,version,arch)."""
    parts = str(record.get("annotations", {}).get("osInfo", "")).split(",")
    if len(parts) >= 2 and parts[0]:
        return f"{parts[0].capitalize()} {parts[1]}"
    return ""


def _node_pool_labels(record: dict, machine: dict) -> dict[str, str]:
    deployment = next((item for item in records.machine_deployments(record) if item["name"] == machine["pool"]), None)
    value = records.pool_variable_value(record, deployment, "nodePoolLabels") if deployment else None
    if not isinstance(value, list):
        return {}
    return {str(item["key"]): str(item.get("value", "")) for item in value if isinstance(item, dict) and "key" in item}


def _node_pool_taints(record: dict, machine: dict) -> list[dict]:
    deployment = next((item for item in records.machine_deployments(record) if item["name"] == machine["pool"]), None)
    value = records.pool_variable_value(record, deployment, "nodePoolTaints") if deployment else None
    if not isinstance(value, list):
        return []
    return [
        {key: str(item[key]) for key in ("key", "value", "effect") if item.get(key) is not None}
        for item in value
        if isinstance(item, dict) and item.get("key") and item.get("effect")
    ]


def node_resources(spec: MachineSpec, gpus: int) -> dict[str, str]:
    """Capacity of a Node: CPUs, memory in MiB, the disk as ephemeral storage, pods, and GPUs if any."""
    resources = {
        "cpu": str(spec.num_cpus),
        "memory": f"{spec.memory_mib}Mi",
        "ephemeral-storage": f"{spec.disk_gib}Gi",
        "pods": str(MAX_PODS),
    }
    if gpus > 0:
        resources[GPU_RESOURCE] = str(gpus)
    return resources


def node_object(record: dict, machine: dict, spec: MachineSpec, workers_without_gpu: bool = False) -> dict:
    """Return the Node of one machine. `workers_without_gpu` drops nvidia.com/gpu from worker Nodes."""
    name = machine["name"]
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
    }
    taints: list[dict] = []
    gpus = gpu_count(spec)
    if machine["role"] == "control-plane":
        labels[CONTROL_PLANE_ROLE] = ""
        labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
        taints.append({"key": CONTROL_PLANE_ROLE, "effect": "NoSchedule"})
    else:
        labels.update(_node_pool_labels(record, machine))
        labels[POOL_LABEL] = str(machine["pool"])
        taints += _node_pool_taints(record, machine)
        if workers_without_gpu:
            gpus = 0
    if any(device.vendor_id == NVIDIA_VENDOR_ID for device in spec.pci_devices):
        labels[NVIDIA_PCI_LABEL] = "true"

    resources = node_resources(spec, gpus)
    node: dict = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {
                KWOK_NODE_ANNOTATION: "fake",
                CLUSTER_NAME_ANNOTATION: record["name"],
                CLUSTER_NAMESPACE_ANNOTATION: record["namespace"],
                MACHINE_ANNOTATION: name,
            },
        },
        "spec": {},
        "status": {
            "capacity": dict(resources),
            "allocatable": dict(resources),
            "nodeInfo": {
                "architecture": "amd64",
                "operatingSystem": "linux",
                "kubeletVersion": record.get("kubernetesVersion", ""),
                "osImage": _os_image(record),
            },
        },
    }
    if taints:
        node["spec"]["taints"] = taints
    return node


def node_objects(record: dict, workers_without_gpu: bool = False) -> list[dict]:
    """Return the Nodes of the record's running machines, control plane first.

    Machines that are provisioning or failed have no Node yet, as their kubelet never registered.
    """
    nodes = []
    for machine in records.control_plane_machines(record) + [
        machine for machine in record["machines"] if machine["role"] == "worker"
    ]:
        if machine["phase"] != "Running":
            continue
        spec = machine_spec(record, machine)
        if spec is None:
            continue
        nodes.append(node_object(record, machine, spec, workers_without_gpu))
    return nodes


def belongs_to(node: dict, namespace: str, name: str) -> bool:
    annotations = node.get("metadata", {}).get("annotations") or {}
    return annotations.get(CLUSTER_NAME_ANNOTATION) == name and annotations.get(CLUSTER_NAMESPACE_ANNOTATION) == namespace
