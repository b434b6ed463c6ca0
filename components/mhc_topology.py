"""Site-side MachineHealthCheck and rollout settings of a class-based cluster, patched into its Cluster topology.

A class-based cluster takes its MachineHealthCheck from the ClusterClass, so the site's timeouts reach it only
through ``spec.topology.controlPlane.machineHealthCheck`` and ``spec.topology.workers.machineDeployments[]
.machineHealthCheck`` (Cluster API's MachineHealthCheckTopology). Setting any field there replaces the class
definition as a whole, so the override repeats the unhealthy conditions. The worker rollout strategy has no TKG
variable for class-based clusters and goes into ``machineDeployments[].strategy``. Plan-based clusters get
both from their TKG variables and need no patch.

The Cluster object lives in the management cluster, reached with the kubeconfig that the management stack
exports.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as kubernetes
from kubernetes.client import ApiextensionsV1Api, CustomObjectsApi

from components import management
from components.config import ClusterSettings, ConfigError, SiteConfig, duration_seconds
from components.gpu_profile import GpuProfile
from components.i18n import _
from components.tkg_variables import rollout_strategy

RESOURCE_TYPE = "tkg-gpu:index:ClusterTopologyOverride"
CLUSTER_API_VERSION = "cluster.x-k8s.io/v1beta1"
CLUSTER_CRD = "clusters.cluster.x-k8s.io"
WORKER_CLASS = "tkg-worker"
"""Machine deployment class of TKG's vSphere ClusterClass, the one its PCI passthrough patches select."""
EDGE_MIN_ETCD_DIAL_TIMEOUT = "40s"

# TKG's own MachineHealthCheck defaults (tanzu-framework v0.29.0 providers/config_default.yaml). They fill a
# timeout the site leaves unset once it sets another one, because the override replaces the class definition whole.
TKG_MHC_DEFAULTS = {
    "node_startup_timeout": "20m",
    "mhc_unknown_status_timeout": "5m",
    "mhc_false_status_timeout": "12m",
}


def worker_pool_names(cluster: ClusterSettings) -> list[str]:
    """Return the machine deployment names TKG creates: md-0, or md-0 to md-2 for the prod plan."""
    count = 3 if cluster.plan == "prod" else 1
    return [f"md-{index}" for index in range(count)]


def pool_replicas(cluster: ClusterSettings) -> dict[str, int]:
    """Return the replicas TKG gives each pool: the prod plan spreads workers, the first pools taking the rest."""
    names = worker_pool_names(cluster)
    base, extra = divmod(cluster.worker_count, len(names))
    return {name: base + (1 if index < extra else 0) for index, name in enumerate(names)}


def machine_health_check(timeouts: Mapping[str, str]) -> dict[str, Any] | None:
    """Return the MachineHealthCheckTopology for the site's timeouts, or None to keep the ClusterClass's own."""
    if not timeouts:
        return None

    values = {**TKG_MHC_DEFAULTS, **timeouts}
    return {
        "enable": True,
        "nodeStartupTimeout": values["node_startup_timeout"],
        "unhealthyConditions": [
            {"type": "Ready", "status": "Unknown", "timeout": values["mhc_unknown_status_timeout"]},
            {"type": "Ready", "status": "False", "timeout": values["mhc_false_status_timeout"]},
        ],
        "maxUnhealthy": "100%",
    }


def rollout(strategy: str) -> dict[str, Any]:
    """Return the MachineDeployment strategy for a GPU pool.

    RollingUpdate removes a machine before it creates the replacement (maxSurge 0), because a surge VM finds
    every passthrough GPU taken unless the site has a spare one.
    """
    if strategy == "OnDelete":
        return {"type": "OnDelete"}

    return {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}


def topology_overrides(site: SiteConfig, profile: GpuProfile) -> dict[str, Any]:
    """Return the fields this program owns: control-plane MHC, and MHC and strategy of each GPU pool by name."""
    health_check = machine_health_check(site.edge_timeouts())
    pool_fields: dict[str, Any] = {"strategy": rollout(rollout_strategy(site, profile))}
    if health_check is not None:
        pool_fields["machineHealthCheck"] = health_check

    return {
        "controlPlane": {"machineHealthCheck": health_check} if health_check is not None else {},
        # The cluster-wide pci.worker variable reaches every tkg-worker pool, so each pool is a GPU pool.
        "pools": {name: copy.deepcopy(pool_fields) for name in worker_pool_names(site.cluster)},
    }


def machine_deployments_keyed_by_name(crd: Mapping[str, Any] | None, version: str = "v1beta1") -> bool:
    """Tell whether the Cluster CRD declares topology.workers.machineDeployments a list map keyed by name.

    Server-side apply merges such a list entry by entry. Any other list, and every list under
    x-kubernetes-preserve-unknown-fields without a schema, is atomic: an apply replaces it whole.
    """
    if not crd:
        return False

    for item in crd.get("spec", {}).get("versions", []):
        if item.get("name") != version:
            continue
        node: Any = item.get("schema", {}).get("openAPIV3Schema", {})
        for key in ("spec", "topology", "workers", "machineDeployments"):
            node = (node.get("properties") or {}).get(key)
            if not isinstance(node, Mapping):
                return False
        return node.get("x-kubernetes-list-type") == "map" and node.get("x-kubernetes-list-map-keys") == ["name"]

    return False


def _planned_entries(cluster: ClusterSettings) -> list[dict[str, Any]]:
    """Return the machine deployment entries TKG creates, for a preview that runs before the Cluster exists."""
    return [
        {"class": WORKER_CLASS, "name": name, "replicas": replicas} for name, replicas in pool_replicas(cluster).items()
    ]


def topology_patch_spec(
    overrides: Mapping[str, Any],
    live_cluster: Mapping[str, Any] | None,
    keyed_by_name: bool,
    planned: list[dict[str, Any]],
) -> dict[str, Any]:
    """Return the ``spec`` to apply to the Cluster.

    With a list map keyed by name, each entry carries only its name and this program's fields. With an
    atomic list, an apply replaces the whole list, so every live entry goes out complete (class, replicas,
    variables and the rest), with this program's fields set on the GPU pools.
    """
    live_entries = (
        (live_cluster or {}).get("spec", {}).get("topology", {}).get("workers", {}).get("machineDeployments")
    )
    entries = copy.deepcopy(live_entries if live_entries is not None else planned)
    pools = overrides["pools"]

    if keyed_by_name:
        deployments = [{"name": entry["name"], **copy.deepcopy(pools[entry["name"]])} for entry in entries if entry.get("name") in pools]
    else:
        deployments = []
        for entry in entries:
            if entry.get("name") in pools:
                entry.update(copy.deepcopy(pools[entry["name"]]))
            deployments.append(entry)

    topology: dict[str, Any] = {"workers": {"machineDeployments": deployments}}
    if overrides["controlPlane"]:
        topology["controlPlane"] = copy.deepcopy(overrides["controlPlane"])

    return {"topology": topology}


def topology_in_sync(live_cluster: Mapping[str, Any] | None, overrides: Mapping[str, Any]) -> bool:
    """Tell whether the live Cluster already carries every field of ``overrides`` with the same value."""
    if live_cluster is None:
        return False

    topology = live_cluster.get("spec", {}).get("topology", {})
    control_plane = topology.get("controlPlane", {})
    for key, value in overrides["controlPlane"].items():
        if control_plane.get(key) != value:
            return False

    live_pools = {entry.get("name"): entry for entry in topology.get("workers", {}).get("machineDeployments") or []}
    for name, fields in overrides["pools"].items():
        entry = live_pools.get(name)
        if entry is None:
            continue
        if any(entry.get(key) != value for key, value in fields.items()):
            return False

    return True


def dial_timeout_warning(site_kind: str, value: str | None, stack: str) -> str | None:
    """Return the warning for an edge site whose management cluster keeps a short etcd dial timeout, else None."""
    if site_kind != "edge":
        return None

    if value is None:
        return _(
            "management stack {stack} exports no etcdDialTimeout; edge sites need --etcd-dial-timeout-duration of at "
            "least {minimum} on the management cluster. Run `pulumi up` on that stack."
        ).format(stack=stack, minimum=EDGE_MIN_ETCD_DIAL_TIMEOUT)

    try:
        seconds = duration_seconds(value)
    except ValueError:
        seconds = 0.0
    if seconds < duration_seconds(EDGE_MIN_ETCD_DIAL_TIMEOUT):
        return _(
            "management stack {stack} sets --etcd-dial-timeout-duration={value}; edge sites need at least {minimum}. "
            "Raise management.etcdDialTimeout there."
        ).format(stack=stack, value=value, minimum=EDGE_MIN_ETCD_DIAL_TIMEOUT)

    return None


def require_kubeconfig(value: Any, stack_name: str) -> str:
    """Return the management stack's kubeconfig output, or stop the run naming the setting that points there."""
    if not value:
        raise pulumi.RunError(
            _("tkg-gpu:managementStack: stack {stack} exports no kubeconfig; point the setting at a stack with tkg-gpu:role: management and run pulumi up on that stack first").format(
                stack=stack_name
            )
        )

    return value


class ManagementReference:
    """The management stack of a site: its kubeconfig (secret), etcd dial timeout and a provider for it."""

    def __init__(self, site: SiteConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        if not site.management_stack:
            raise ConfigError(
                _("tkg-gpu:managementStack: missing; a class-based cluster needs the management stack that holds its management cluster's kubeconfig, such as organization/tkg-gpu/mgmt")
            )

        self.stack_name = site.management_stack
        self.stack = pulumi.StackReference("management-stack", stack_name=self.stack_name, opts=opts)
        self.kubeconfig: pulumi.Output[str] = pulumi.Output.secret(
            self.stack.get_output("kubeconfig").apply(lambda value: require_kubeconfig(value, self.stack_name))
        )
        self.etcd_dial_timeout: pulumi.Output[Any] = self.stack.get_output("etcdDialTimeout")
        self.provider = kubernetes.Provider(
            "management-cluster",
            kubeconfig=self.kubeconfig,
            enable_server_side_apply=True,
            opts=opts,
        )
        self.etcd_dial_timeout.apply(lambda value: self._warn(site.site.kind, value))

    def _warn(self, site_kind: str, value: Any) -> None:
        message = dial_timeout_warning(site_kind, value if isinstance(value, str) else None, self.stack_name)
        if message:
            pulumi.log.warn(message, resource=self.stack)


class ClusterTopologyOverride(pulumi.ComponentResource):
    """MachineHealthCheck and rollout strategy of a class-based cluster, set in its Cluster topology.

    ``cluster_name`` should be an output of the TanzuCluster resource, so the live Cluster is read only once
    it exists. The caller also passes ``depends_on`` on that resource in ``opts``.
    """

    patched: pulumi.Output[bool]
    topology: pulumi.Output[Any]

    def __init__(
        self,
        name: str,
        *,
        site: SiteConfig,
        profile: GpuProfile,
        management_reference: ManagementReference,
        cluster_name: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(RESOURCE_TYPE, name, None, opts)

        if not site.cluster.class_based:
            # Plan-based clusters render their MachineHealthChecks and strategy from the TKG variables.
            self.patched = pulumi.Output.from_input(False)
            self.topology = pulumi.Output.from_input(None)
            self.register_outputs({"patched": self.patched})
            return

        namespace = site.cluster.namespace
        overrides = topology_overrides(site, profile)
        planned = _planned_entries(site.cluster)
        # Read the live Cluster and its CRD once the cluster exists. The result contains no secret, although the
        # kubeconfig that reads it is one, so it is unsecreted to keep the diff readable.
        desired = pulumi.Output.unsecret(
            pulumi.Output.all(management_reference.kubeconfig, cluster_name).apply(
                lambda values: _desired_patch(values[0], values[1], namespace, overrides, planned)
            )
        )

        self.cluster_patch = kubernetes.apiextensions.CustomResourcePatch(
            f"{name}-cluster",
            api_version=CLUSTER_API_VERSION,
            kind="Cluster",
            # The provider rejects a patch whose name is unknown, even in a preview, so name and namespace come
            # from the stack settings (the tanzu CLI names the Cluster after cluster.name).
            metadata=kubernetes.meta.v1.ObjectMetaPatchArgs(
                name=site.cluster.name,
                namespace=namespace,
                annotations=desired.apply(lambda patch: patch["metadata"]["annotations"]),
            ),
            spec=desired.apply(lambda patch: patch["spec"]),
            # Deleting a patch gives up its fields, and with an atomic machineDeployments list that this
            # stack owns alone, a delete would empty the list. The settings stay on the Cluster instead.
            opts=pulumi.ResourceOptions(
                parent=self, provider=management_reference.provider, retain_on_delete=True
            ),
        )

        self.patched = pulumi.Output.from_input(True)
        self.topology = desired.apply(lambda patch: patch["spec"]["topology"])
        self.register_outputs({"patched": self.patched, "topology": self.topology})


def _desired_patch(
    kubeconfig: str,
    cluster_name: str,
    namespace: str,
    overrides: Mapping[str, Any],
    planned: list[dict[str, Any]],
) -> dict[str, Any]:
    """Read the Cluster and its CRD from the management cluster and build the patch's metadata and spec."""
    live_cluster, crd = _read_cluster(kubeconfig, namespace, cluster_name)
    if live_cluster is None and not pulumi.runtime.is_dry_run():
        raise pulumi.RunError(
            _("Cluster {namespace}/{name} not found in the management cluster {server}; the tanzu CLI created no Cluster object there, so its topology cannot be patched").format(
                namespace=namespace, name=cluster_name, server=management.server_of(kubeconfig)
            )
        )

    annotations = {"pulumi.com/patchForce": "true", "pulumi.com/patchFieldManager": management.FIELD_MANAGER}
    marker = management.reapply_marker((live_cluster or {}).get("metadata", {}), topology_in_sync(live_cluster, overrides))
    if marker is not None and live_cluster is not None:
        annotations[management.REAPPLIED_ANNOTATION] = marker

    return {
        "metadata": {"name": cluster_name, "namespace": namespace, "annotations": annotations},
        "spec": topology_patch_spec(overrides, live_cluster, machine_deployments_keyed_by_name(crd), planned),
    }


def _read_cluster(kubeconfig: str, namespace: str, name: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    def read_cluster(client: Any) -> Any:
        return CustomObjectsApi(client).get_namespaced_custom_object(
            "cluster.x-k8s.io", "v1beta1", namespace, "clusters", name,
            _preload_content=False, _request_timeout=management.REQUEST_TIMEOUT_SECONDS,
        )

    def read_crd(client: Any) -> Any:
        return ApiextensionsV1Api(client).read_custom_resource_definition(
            CLUSTER_CRD, _preload_content=False, _request_timeout=management.REQUEST_TIMEOUT_SECONDS
        )

    try:
        live_cluster = management.read_json(kubeconfig, read_cluster, f"read Cluster {namespace}/{name}")
    except management.ManagementClusterError as error:
        raise pulumi.RunError(str(error)) from None

    try:
        crd = management.read_json(kubeconfig, read_crd, f"read CustomResourceDefinition {CLUSTER_CRD}")
    except management.ManagementClusterError as error:
        # Without the schema the list is treated as atomic. Complete entries are correct for both list types.
        pulumi.log.debug(f"{error}; sending complete machineDeployments entries")
        crd = None

    return live_cluster, crd
