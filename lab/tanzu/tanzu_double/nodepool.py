"""`tanzu cluster node-pool set|delete` on the class-based topology of a cluster record.

The rules follow TKG at tanzu-framework v0.29.0 (tkg/client/machine_deployment.go and
machine_deployment_cc.go):
- The node-pool file is parsed leniently: unknown keys, including GPU settings such as
  pciDevices, customVMXKeys or hardwareVersion, are dropped without a message.
- `baseMachineDeployment` in the file is always replaced by the flag value.
- A new pool copies the base pool's topology entry (class, overrides, strategy); without a
  base it needs workerClass and tkrResolver.
- Machine sizes and vCenter settings of a new pool go into `worker` / `vcenter` overrides that
  start as copies of the cluster-wide variables, so cluster-wide customVMXKeys travel along.
- Updating an existing pool only changes replicas, class, tkrResolver, labels and taints.

`node-pool set` creates no VMs: new replicas appear as simulated machines that are ready at
once (`cluster scale` does build VMs for new replicas). Removing replicas or a pool queues the
VMs behind them for deletion.
"""

from __future__ import annotations

import copy

from . import records
from .config import load_yaml_document
from .errors import CliError
from .godur import GoDurationError, parse_go_duration

_STRING_KEYS = ("name", "az", "nodeMachineType", "workerClass", "vmClass", "storageClass", "tkrResolver")
_VSPHERE_STRING_KEYS = (
    "cloneMode", "datacenter", "datastore", "storagePolicyName", "folder", "network",
    "tkgIPFamily", "resourcePool", "vcIP", "template",
)
_VSPHERE_INT_KEYS = ("memoryMiB", "diskGiB", "numCPUs")
_VCENTER_OPTION_KEYS = {
    "cloneMode": "cloneMode", "datacenter": "datacenter", "datastore": "datastore", "folder": "folder",
    "network": "network", "resourcePool": "resourcePool", "storagePolicyName": "storagePolicyName", "vcIP": "server",
}


def _type_error(key: str, expected: str) -> CliError:
    return CliError(f"Could not parse file contents: key '{key}' must be {expected}")


def _expect_string(data: dict, key: str, prefix: str = "") -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        raise _type_error(prefix + key, "a string")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _expect_int(data: dict, key: str, prefix: str = "") -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(prefix + key, "an integer")
    return value


def parse_node_pool(text: str, source: str) -> dict:
    """Return the NodePool keys that TKG parses, type-checked. Other keys are dropped silently."""
    document = load_yaml_document(text, source)
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise CliError("Could not parse file contents: expected a YAML map describing a node pool")

    pool: dict[str, object] = {}
    for key in _STRING_KEYS:
        value = _expect_string(document, key)
        if value is not None:
            pool[key] = value
    replicas = _expect_int(document, "replicas")
    if replicas is not None:
        if not -(2**31) <= replicas < 2**31:
            raise _type_error("replicas", "a 32-bit integer")
        pool["replicas"] = replicas

    labels = document.get("labels")
    if labels is not None:
        if not isinstance(labels, dict):
            raise _type_error("labels", "a map of strings")
        pool["labels"] = {str(key): _expect_string(labels, key, "labels.") or "" for key in labels}

    taints = document.get("taints")
    if taints is not None:
        if not isinstance(taints, list) or not all(isinstance(item, dict) for item in taints):
            raise _type_error("taints", "a list of taints (key, value, effect)")
        pool["taints"] = [
            {key: str(item[key]) for key in ("key", "value", "effect", "timeAdded") if item.get(key) is not None}
            for item in taints
        ]

    volumes = document.get("volumes")
    if volumes is not None:
        if not isinstance(volumes, list):
            raise _type_error("volumes", "a list")
        pool["volumes"] = volumes

    drain = _expect_string(document, "nodeDrainTimeout")
    if drain is not None:
        try:
            parse_go_duration(drain)
        except GoDurationError as error:
            raise CliError(f"Could not parse file contents: nodeDrainTimeout: {error}") from None
        pool["nodeDrainTimeout"] = drain

    vsphere = document.get("vsphere")
    if vsphere is not None:
        if not isinstance(vsphere, dict):
            raise _type_error("vsphere", "a map")
        parsed: dict[str, object] = {}
        for key in _VSPHERE_STRING_KEYS:
            value = _expect_string(vsphere, key, "vsphere.")
            if value is not None:
                parsed[key] = value
        for key in _VSPHERE_INT_KEYS:
            value = _expect_int(vsphere, key, "vsphere.")
            if value is not None:
                parsed[key] = value
        nameservers = vsphere.get("nameservers")
        if nameservers is not None:
            if not isinstance(nameservers, list):
                raise _type_error("vsphere.nameservers", "a list of strings")
            parsed["nameservers"] = [str(item) for item in nameservers]
        pool["vsphere"] = parsed
    return pool


def _override(record: dict, deployment: dict, name: str) -> dict:
    """Return the pool's override of variable `name`, created as a copy of the cluster-wide value."""
    overrides = deployment.setdefault("variables", {}).setdefault("overrides", [])
    for variable in overrides:
        if variable["name"] == name:
            return variable
    cluster_value = records.topology_variable(record, name)
    variable = copy.deepcopy(cluster_value) if cluster_value else {"name": name, "value": None}
    overrides.append(variable)
    return variable


def _apply_new_pool_options(record: dict, deployment: dict, pool: dict) -> None:
    if pool.get("az"):
        deployment["failureDomain"] = pool["az"]
    for key, variable_name in (("vmClass", "vmClass"), ("storageClass", "storageClass")):
        if pool.get(key):
            _override(record, deployment, variable_name)["value"] = pool[key]
    if "volumes" in pool:
        _override(record, deployment, "nodePoolVolumes")["value"] = pool["volumes"]

    vsphere = pool.get("vsphere") or {}
    sizes = {key: vsphere[key] for key in _VSPHERE_INT_KEYS if vsphere.get(key, 0) > 0}
    if sizes or vsphere.get("nameservers") or pool.get("nodeMachineType"):
        worker = _override(record, deployment, "worker")
        value = worker["value"] if isinstance(worker.get("value"), dict) else {}
        machine = value.get("machine")
        if isinstance(machine, dict):
            machine.update(sizes)
        if vsphere.get("nameservers") and isinstance(value.get("network"), dict):
            value["network"]["nameservers"] = list(vsphere["nameservers"])
        worker["value"] = value

    vcenter_options = {target: vsphere[key] for key, target in _VCENTER_OPTION_KEYS.items() if vsphere.get(key)}
    if vcenter_options:
        vcenter = _override(record, deployment, "vcenter")
        value = vcenter["value"] if isinstance(vcenter.get("value"), dict) else {}
        value.update(vcenter_options)
        vcenter["value"] = value


def set_node_pool(record: dict, pool: dict, base_name: str) -> str:
    """Create or update a pool in the record's topology and return the pool name."""
    name = str(pool.get("name") or "")
    if not name:
        raise CliError("missing 'name' in the node pool file")
    deployments = records.machine_deployments(record)
    update = next((item for item in deployments if item["name"] == name), None)
    base = next((item for item in deployments if base_name and item["name"] == base_name), None)
    if update is not None and base is not None:
        raise CliError(f"cannot use --base-machine-deployment while updating the existing node pool '{name}'")

    if update is not None:
        deployment = update
    else:
        if base is not None:
            deployment = copy.deepcopy(base)
        else:
            if not pool.get("workerClass") or not pool.get("tkrResolver"):
                raise CliError(
                    "a new node pool without --base-machine-deployment needs both workerClass and tkrResolver"
                )
            deployment = {"metadata": {"annotations": {}}}
            if "replicas" not in pool:
                deployment["replicas"] = 1
        deployments.append(deployment)
        record.setdefault("objectSuffixes", {})[name] = records.random_suffix()

    deployment["name"] = name
    if "replicas" in pool:
        deployment["replicas"] = pool["replicas"]
    if pool.get("workerClass"):
        deployment["class"] = pool["workerClass"]
    if pool.get("tkrResolver"):
        deployment.setdefault("metadata", {}).setdefault("annotations", {})[
            "run.tanzu.vmware.com/resolve-os-image"
        ] = pool["tkrResolver"]
    deployment.setdefault("variables", {}).setdefault("overrides", [])

    if "labels" in pool:
        existing = records.pool_variable_value(record, deployment, "nodePoolLabels")
        labels = list(existing) if isinstance(existing, list) else []
        labels += [{"key": key, "value": value} for key, value in pool["labels"].items()]
        _override(record, deployment, "nodePoolLabels")["value"] = labels
    if "taints" in pool:
        _override(record, deployment, "nodePoolTaints")["value"] = pool["taints"]

    if update is None:
        _apply_new_pool_options(record, deployment, pool)
    _scale_machines(record, name, int(deployment.get("replicas", 0)))
    return name


def delete_node_pool(record: dict, name: str) -> None:
    deployments = records.machine_deployments(record)
    remaining = [item for item in deployments if item["name"] != name]
    if not remaining:
        raise CliError(f"cannot delete node pool '{name}': a cluster needs at least one node pool")
    if len(remaining) == len(deployments):
        raise CliError(f"node pool '{name}' not found in cluster '{record['name']}'")
    record["topology"]["workers"]["machineDeployments"] = remaining
    _scale_machines(record, name, 0)


def _scale_machines(record: dict, pool: str, replicas: int) -> None:
    """Match the pool's machines to `replicas`: add simulated ones, or drop and queue VMs."""
    machines = records.pool_machines(record, pool)
    missing = replicas - len(machines)
    for _ in range(missing):
        record["machines"].append(
            records.new_machine(records.new_machine_name(record["name"], pool), "worker", pool, simulated=True)
        )
    if missing < 0:
        records.remove_surplus_machines(record, machines, -missing)
