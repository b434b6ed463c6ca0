"""Cluster topology override of class-based clusters and the management stack reference."""

from __future__ import annotations

import copy
import pathlib

import pulumi
import pytest
import yaml

from components import config, gpu_profile, management, mhc_topology
from tests.unit.sites import inventory, site_dict

ROOT = pathlib.Path(__file__).resolve().parents[2]
MANAGEMENT_STACK = "organization/tkg-gpu/mgmt"
OS_ANNOTATION = {"run.tanzu.vmware.com/resolve-os-image": "image-type=ova,os-name=ubuntu"}
EDGE_HEALTH_CHECK = {
    "enable": True,
    "nodeStartupTimeout": "60m",
    "unhealthyConditions": [
        {"type": "Ready", "status": "Unknown", "timeout": "5m"},
        {"type": "Ready", "status": "False", "timeout": "40m"},
    ],
    "maxUnhealthy": "100%",
}


def site_config(**overrides) -> config.SiteConfig:
    raw = site_dict(managementStack=MANAGEMENT_STACK, **overrides)
    return config.parse_site_config(raw)


def edge_site(**cluster) -> config.SiteConfig:
    return site_config(site={"name": "edge-01", "kind": "edge"}, cluster=cluster)


def profile_for(site: config.SiteConfig, gpus_per_host: int = 2) -> gpu_profile.GpuProfile:
    return gpu_profile.build_profile(site, inventory(gpus_per_host=gpus_per_host))


def live_cluster(pools: tuple[str, ...] = ("md-0",), generation: int = 4) -> dict:
    """A Cluster as the tanzu double writes it: class, metadata, replicas and per-pool variable overrides."""
    return {
        "apiVersion": "cluster.x-k8s.io/v1beta1",
        "kind": "Cluster",
        "metadata": {"name": "gpu-wc-01", "namespace": "default", "generation": generation},
        "spec": {
            "topology": {
                "class": "tkg-vsphere-default-v1.0.0",
                "controlPlane": {"metadata": {"annotations": dict(OS_ANNOTATION)}, "replicas": 1},
                "workers": {
                    "machineDeployments": [
                        {
                            "class": "tkg-worker",
                            "metadata": {"annotations": dict(OS_ANNOTATION)},
                            "name": name,
                            "replicas": 2,
                            "variables": {"overrides": [{"name": "worker", "value": {"machine": {"numCPUs": 8}}}]},
                        }
                        for name in pools
                    ]
                },
            }
        },
    }


def capi_style_crd(list_type: str | None = "map") -> dict:
    deployments: dict = {"type": "array", "items": {"type": "object"}}
    if list_type:
        deployments["x-kubernetes-list-type"] = list_type
    if list_type == "map":
        deployments["x-kubernetes-list-map-keys"] = ["name"]

    def props(**children):
        return {"type": "object", "properties": children}

    schema = props(spec=props(topology=props(workers=props(machineDeployments=deployments))))
    return {"spec": {"versions": [{"name": "v1beta1", "schema": {"openAPIV3Schema": schema}}]}}


def lab_cluster_crd() -> dict:
    documents = [document for document in yaml.safe_load_all((ROOT / "lab" / "capi" / "crds.yaml").read_text()) if document]
    return next(document for document in documents if document["metadata"]["name"] == mhc_topology.CLUSTER_CRD)


# Pools, health checks and strategy


def test_worker_pool_names_dev():
    assert mhc_topology.worker_pool_names(site_config().cluster) == ["md-0"]


def test_worker_pool_names_prod():
    cluster = site_config(cluster={"plan": "prod", "workerCount": 4}).cluster
    assert mhc_topology.worker_pool_names(cluster) == ["md-0", "md-1", "md-2"]
    assert mhc_topology.pool_replicas(cluster) == {"md-0": 2, "md-1": 1, "md-2": 1}


def test_machine_health_check_edge_defaults():
    site = edge_site()
    assert mhc_topology.machine_health_check(site.edge_timeouts()) == EDGE_HEALTH_CHECK


def test_machine_health_check_repeats_both_conditions():
    check = mhc_topology.machine_health_check({"mhc_unknown_status_timeout": "7m"})
    conditions = {condition["status"]: condition["timeout"] for condition in check["unhealthyConditions"]}

    assert conditions == {"Unknown": "7m", "False": "12m"}
    assert check["nodeStartupTimeout"] == "20m"


def test_machine_health_check_none_without_timeouts():
    assert mhc_topology.machine_health_check({}) is None


def test_rollout_strategies():
    assert mhc_topology.rollout("RollingUpdate") == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    assert mhc_topology.rollout("OnDelete") == {"type": "OnDelete"}


def test_topology_overrides_edge_site():
    site = edge_site(rolloutStrategy="OnDelete")
    overrides = mhc_topology.topology_overrides(site, profile_for(site))

    assert overrides["controlPlane"] == {"machineHealthCheck": EDGE_HEALTH_CHECK}
    assert overrides["pools"] == {"md-0": {"strategy": {"type": "OnDelete"}, "machineHealthCheck": EDGE_HEALTH_CHECK}}


def test_topology_overrides_datacenter_site_keeps_class_health_check():
    site = site_config()
    overrides = mhc_topology.topology_overrides(site, profile_for(site))

    assert overrides["controlPlane"] == {}
    assert list(overrides["pools"]["md-0"]) == ["strategy"]


def test_topology_overrides_without_spare_gpu_uses_on_delete():
    site = edge_site(workerCount=4)
    overrides = mhc_topology.topology_overrides(site, profile_for(site, gpus_per_host=2))
    assert overrides["pools"]["md-0"]["strategy"] == {"type": "OnDelete"}


# List semantics of the CRD


def test_lab_crd_makes_list_atomic():
    assert mhc_topology.machine_deployments_keyed_by_name(lab_cluster_crd()) is False


def test_capi_style_crd_keys_list_by_name():
    assert mhc_topology.machine_deployments_keyed_by_name(capi_style_crd("map")) is True


def test_atomic_list_type_is_not_keyed():
    assert mhc_topology.machine_deployments_keyed_by_name(capi_style_crd("atomic")) is False
    assert mhc_topology.machine_deployments_keyed_by_name(capi_style_crd(None)) is False


def test_unreadable_crd_is_not_keyed():
    assert mhc_topology.machine_deployments_keyed_by_name(None) is False


# Patch body


def overrides_for(site: config.SiteConfig) -> dict:
    return mhc_topology.topology_overrides(site, profile_for(site))


def test_patch_atomic_list_keeps_pool_fields():
    site = edge_site()
    spec = mhc_topology.topology_patch_spec(overrides_for(site), live_cluster(), False, [])
    [entry] = spec["topology"]["workers"]["machineDeployments"]

    assert entry["class"] == "tkg-worker"
    assert entry["replicas"] == 2
    assert entry["metadata"] == {"annotations": OS_ANNOTATION}
    assert entry["variables"] == {"overrides": [{"name": "worker", "value": {"machine": {"numCPUs": 8}}}]}
    assert entry["machineHealthCheck"] == EDGE_HEALTH_CHECK
    assert entry["strategy"]["type"] == "RollingUpdate"


def test_patch_atomic_list_keeps_other_pools_unchanged():
    site = edge_site()
    cluster = live_cluster(pools=("md-0", "cpu-pool"))
    spec = mhc_topology.topology_patch_spec(overrides_for(site), cluster, False, [])
    entries = {entry["name"]: entry for entry in spec["topology"]["workers"]["machineDeployments"]}

    assert entries["cpu-pool"] == cluster["spec"]["topology"]["workers"]["machineDeployments"][1]
    assert "machineHealthCheck" in entries["md-0"]


def test_patch_keyed_list_sends_only_owned_fields():
    site = edge_site()
    spec = mhc_topology.topology_patch_spec(overrides_for(site), live_cluster(pools=("md-0", "cpu-pool")), True, [])
    [entry] = spec["topology"]["workers"]["machineDeployments"]

    assert set(entry) == {"name", "machineHealthCheck", "strategy"}
    assert entry["name"] == "md-0"


def test_patch_sets_control_plane_health_check():
    spec = mhc_topology.topology_patch_spec(overrides_for(edge_site()), live_cluster(), False, [])
    assert spec["topology"]["controlPlane"] == {"machineHealthCheck": EDGE_HEALTH_CHECK}


def test_patch_without_control_plane_override():
    spec = mhc_topology.topology_patch_spec(overrides_for(site_config()), live_cluster(), False, [])
    assert "controlPlane" not in spec["topology"]


def test_patch_before_cluster_exists_uses_planned_pools():
    site = edge_site()
    planned = mhc_topology._planned_entries(site.cluster)
    spec = mhc_topology.topology_patch_spec(overrides_for(site), None, False, planned)
    [entry] = spec["topology"]["workers"]["machineDeployments"]

    assert (entry["class"], entry["name"], entry["replicas"]) == ("tkg-worker", "md-0", 2)


def test_patch_does_not_modify_live_object():
    cluster = live_cluster()
    before = copy.deepcopy(cluster)
    mhc_topology.topology_patch_spec(overrides_for(edge_site()), cluster, False, [])
    assert cluster == before


# Drift detection


def applied_cluster(site: config.SiteConfig) -> dict:
    overrides = overrides_for(site)
    cluster = live_cluster()
    cluster["spec"]["topology"].update(mhc_topology.topology_patch_spec(overrides, cluster, False, [])["topology"])
    return cluster


def test_topology_in_sync_after_apply():
    site = edge_site()
    assert mhc_topology.topology_in_sync(applied_cluster(site), overrides_for(site)) is True


def test_topology_out_of_sync_after_edit():
    site = edge_site()
    cluster = applied_cluster(site)
    entry = cluster["spec"]["topology"]["workers"]["machineDeployments"][0]
    entry["machineHealthCheck"]["unhealthyConditions"][1]["timeout"] = "12m"

    assert mhc_topology.topology_in_sync(cluster, overrides_for(site)) is False


def test_topology_out_of_sync_before_first_apply():
    site = edge_site()
    assert mhc_topology.topology_in_sync(live_cluster(), overrides_for(site)) is False
    assert mhc_topology.topology_in_sync(None, overrides_for(site)) is False


# Etcd dial timeout of the management stack


@pytest.mark.parametrize(
    ("kind", "value", "warns"),
    [
        ("edge", None, True),
        ("edge", "10s", True),
        ("edge", "39s", True),
        ("edge", "40s", False),
        ("edge", "1m", False),
        ("datacenter", None, False),
        ("datacenter", "10s", False),
    ],
)
def test_dial_timeout_warning(kind, value, warns):
    message = mhc_topology.dial_timeout_warning(kind, value, MANAGEMENT_STACK)
    assert (message is not None) is warns
    if warns:
        assert MANAGEMENT_STACK in message
        assert "40s" in message


# Components under Pulumi mocks


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self, etcd_dial_timeout: str | None = "40s") -> None:
        self.resources: dict[str, dict] = {}
        self.etcd_dial_timeout = etcd_dial_timeout

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources[args.name] = {"type": args.typ, "inputs": args.inputs, "provider": args.provider}
        outputs = dict(args.inputs)
        if args.typ == "pulumi:pulumi:StackReference":
            stack_outputs = {"kubeconfig": "apiVersion: v1\nkind: Config\n"}
            if self.etcd_dial_timeout is not None:
                stack_outputs["etcdDialTimeout"] = self.etcd_dial_timeout
            outputs = {"name": args.inputs["name"], "outputs": stack_outputs, "secretOutputNames": ["kubeconfig"]}

        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


def install_mocks(recorder: RecordingMocks):
    pulumi.runtime.set_mocks(recorder, preview=False)
    return recorder


@pytest.fixture
def mocks():
    yield install_mocks(RecordingMocks())
    pulumi.runtime.settings.SETTINGS.monitor = None


@pytest.fixture
def short_timeout_mocks():
    yield install_mocks(RecordingMocks(etcd_dial_timeout="10s"))
    pulumi.runtime.settings.SETTINGS.monitor = None


@pytest.fixture
def warnings(monkeypatch):
    recorded: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *args, **kwargs: recorded.append(message))
    return recorded


@pytest.fixture
def cluster_reads(monkeypatch):
    """Serve the live Cluster and the lab's CRD in place of the management cluster."""
    reads: list[tuple[str, str]] = []

    def read(kubeconfig, namespace, name):
        reads.append((namespace, name))
        return live_cluster(), lab_cluster_crd()

    monkeypatch.setattr(mhc_topology, "_read_cluster", read)
    return reads


def build_override(site: config.SiteConfig):
    reference = mhc_topology.ManagementReference(site)
    override = mhc_topology.ClusterTopologyOverride(
        "gpu-wc-01-topology",
        site=site,
        profile=profile_for(site),
        management_reference=reference,
        cluster_name=pulumi.Output.from_input(site.cluster.name),
    )
    return reference, override


@pulumi.runtime.test
def test_override_declares_cluster_patch(mocks, cluster_reads, warnings):
    _reference, override = build_override(edge_site())

    def check(values):
        topology, _id = values
        patch = mocks.resources["gpu-wc-01-topology-cluster"]
        assert patch["type"] == "kubernetes:cluster.x-k8s.io/v1beta1:ClusterPatch"
        assert patch["inputs"]["apiVersion"] == "cluster.x-k8s.io/v1beta1"
        assert patch["inputs"]["kind"] == "Cluster"
        metadata = patch["inputs"]["metadata"]
        assert (metadata["name"], metadata["namespace"]) == ("gpu-wc-01", "default")
        assert metadata["annotations"]["pulumi.com/patchForce"] == "true"
        assert metadata["annotations"][management.REAPPLIED_ANNOTATION] == "4"
        assert "management-cluster" in patch["provider"]
        [entry] = patch["inputs"]["spec"]["topology"]["workers"]["machineDeployments"]
        assert entry["class"] == "tkg-worker"
        assert entry["machineHealthCheck"] == EDGE_HEALTH_CHECK
        assert topology["controlPlane"] == {"machineHealthCheck": EDGE_HEALTH_CHECK}
        assert cluster_reads == [("default", "gpu-wc-01")]

    return pulumi.Output.all(override.topology, override.cluster_patch.id).apply(check)


@pulumi.runtime.test
def test_override_skips_plan_based_cluster(mocks, cluster_reads, warnings):
    _reference, override = build_override(edge_site(classBased=False))

    def check(patched):
        assert patched is False
        assert "gpu-wc-01-topology-cluster" not in mocks.resources
        assert cluster_reads == []

    return override.patched.apply(check)


@pulumi.runtime.test
def test_reference_exposes_management_outputs(mocks, warnings):
    reference = mhc_topology.ManagementReference(edge_site())

    def check(values):
        timeout, is_secret = values
        assert timeout == "40s"
        assert is_secret
        assert warnings == []

    return pulumi.Output.all(reference.etcd_dial_timeout, pulumi.Output.from_input(reference.kubeconfig.is_secret())).apply(check)


@pulumi.runtime.test
def test_reference_warns_about_short_timeout(short_timeout_mocks, warnings):
    reference = mhc_topology.ManagementReference(edge_site())

    def check(_):
        assert len(warnings) == 1
        assert "--etcd-dial-timeout-duration=10s" in warnings[0]

    return reference.etcd_dial_timeout.apply(check)


def test_reference_requires_management_stack():
    site = config.parse_site_config(site_dict())
    with pytest.raises(config.ConfigError) as caught:
        mhc_topology.ManagementReference(site)

    assert "tkg-gpu:managementStack: missing" in str(caught.value)


def test_management_stack_without_kubeconfig_names_the_setting():
    """A stack that is no management stack, or one never brought up, exports no kubeconfig."""
    with pytest.raises(pulumi.RunError, match=r"^tkg-gpu:managementStack: stack organization/tkg-gpu/dev exports no kubeconfig"):
        mhc_topology.require_kubeconfig(None, "organization/tkg-gpu/dev")

    assert mhc_topology.require_kubeconfig("apiVersion: v1", "organization/tkg-gpu/mgmt") == "apiVersion: v1"
