"""Management-cluster reads and server-side apply bodies against a real lab control plane.

The plane serves the lab's Cluster API CRDs (permissive schemas) and the kubeadm control-plane controller
Deployment created by field manager ``kapp``. The tests apply the bodies that the program declares with the
same field manager and force flag that the DeploymentPatch and CustomResourcePatch use, then check what
other managers' fields survive and what the drift checks report.
"""

from __future__ import annotations

import json

import pytest
import yaml

from components import management, mhc_topology
from components.config import ManagementSettings, parse_site_config
from components.gpu_profile import build_profile
from lab.kube import ROOT
from tests import labtools
from tests.unit.sites import inventory, site_dict

NAMESPACE = "capi-system"
NAME = "capi-kubeadm-control-plane-controller-manager"
LAB_ARGS = [
    "--leader-elect",
    "--metrics-bind-addr=localhost:8080",
    "--feature-gates=ClusterTopology=true,KubeadmBootstrapFormatIgnition=false",
]
OS_ANNOTATION = {"run.tanzu.vmware.com/resolve-os-image": "image-type=ova,os-name=ubuntu"}


@pytest.fixture(scope="module")
def plane(tmp_path_factory):
    with labtools.control_plane("management", tmp_path_factory.mktemp("management")) as started:
        started.install_crds(ROOT / "lab" / "capi" / "crds.yaml")
        started.create_objects(ROOT / "lab" / "capi" / "kubeadm-control-plane-controller.yaml", field_manager="kapp")
        yield started


@pytest.fixture(scope="module")
def kubeconfig(plane):
    return management.load_kubeconfig(ManagementSettings(kubeconfig=str(plane.kubeconfig_path)))


def apply(plane, path: str, body: dict) -> dict:
    """Send a server-side apply as the program's patches do: field manager tkg-gpu, conflicts forced."""
    with plane.api_client() as client:
        response = client.rest_client.request(
            "PATCH",
            f"{plane.server}{path}?fieldManager={management.FIELD_MANAGER}&force=true",
            headers={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
            body=yaml.safe_dump(body).encode(),
        )
        response.read()
        assert response.status == 200, response.data
        return json.loads(response.data)


def deployment_body(containers: list[dict], marker: str | None) -> dict:
    annotations = {management.REAPPLIED_ANNOTATION: marker} if marker else {}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "annotations": annotations},
        "spec": {"template": {"spec": {"containers": containers}}},
    }


def edit_args(plane, args: list[str]) -> None:
    """Replace the manager's args as `kubectl edit` does: an update by field manager kubectl-edit."""
    import kubernetes.client

    with plane.api_client() as client:
        apps = kubernetes.client.AppsV1Api(client)
        # The Deployment controller writes status at the same time, so retry on a resourceVersion conflict.
        for _attempt in range(5):
            live = apps.read_namespaced_deployment(NAME, NAMESPACE)
            live.spec.template.spec.containers[0].args = args
            try:
                apps.replace_namespaced_deployment(NAME, NAMESPACE, live, field_manager="kubectl-edit")
                return
            except kubernetes.client.ApiException as error:
                if error.status != 409:
                    raise
        pytest.fail("the Deployment kept changing; 5 replace attempts ended in 409 Conflict")


def test_kubeconfig_server_matches_plane(plane, kubeconfig):
    assert kubeconfig.server == plane.server


def test_owners_of_lab_deployment(kubeconfig):
    live = management.read_deployment(kubeconfig, NAMESPACE, NAME)
    owners = management.detect_owners(live)

    assert owners[0].startswith("kapp-controller (kapp.k14s.io/app=")
    assert "field manager kapp (Update) owns spec.template.spec.containers[manager].args" in owners


def test_missing_deployment_names_it(kubeconfig):
    with pytest.raises(management.ManagementClusterError) as caught:
        management.read_deployment(kubeconfig, NAMESPACE, "absent-controller")

    assert f"Deployment {NAMESPACE}/absent-controller not found" in str(caught.value)


def test_patch_sets_flag_and_survives_revert(plane, kubeconfig):
    live = management.read_deployment(kubeconfig, NAMESPACE, NAME)
    containers, args, in_sync = management.controller_patch(live, "40s")
    assert not in_sync

    marker = management.reapply_marker(live["metadata"], in_sync)
    applied = apply(plane, f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{NAME}", deployment_body(containers, marker))
    container = applied["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == [*LAB_ARGS, "--etcd-dial-timeout-duration=40s"]
    assert container["image"].endswith("kubeadm-control-plane-controller:v1.7.5_vmware.1")
    assert applied["metadata"]["labels"]["kapp.k14s.io/app"]

    # After the apply this program owns the args, so only the package labels remain as other owners.
    live = management.read_deployment(kubeconfig, NAMESPACE, NAME)
    assert [owner for owner in management.detect_owners(live) if owner.startswith("field manager")] == []
    assert management.controller_patch(live, "40s")[2] is True
    assert management.reapply_marker(live["metadata"], True) == marker

    # A hand edit that drops the flag takes the args and changes the marker the next run declares.
    edit_args(plane, LAB_ARGS)
    reverted = management.read_deployment(kubeconfig, NAMESPACE, NAME)
    containers, _args, in_sync = management.controller_patch(reverted, "40s")
    assert not in_sync
    new_marker = management.reapply_marker(reverted["metadata"], in_sync)
    assert new_marker != marker
    assert "field manager kubectl-edit (Update) owns spec.template.spec.containers[manager].args" in management.detect_owners(reverted)

    restored = apply(plane, f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{NAME}", deployment_body(containers, new_marker))
    assert restored["spec"]["template"]["spec"]["containers"][0]["args"] == args


def lab_cluster() -> dict:
    """A class-based Cluster as the tanzu double writes it into the management plane."""
    return {
        "apiVersion": "cluster.x-k8s.io/v1beta1",
        "kind": "Cluster",
        "metadata": {"name": "gpu-wc-01", "namespace": "default"},
        "spec": {
            "topology": {
                "class": "tkg-vsphere-default-v1.0.0",
                "version": "v1.28.7+vmware.1",
                "controlPlane": {"metadata": {"annotations": dict(OS_ANNOTATION)}, "replicas": 1},
                "workers": {
                    "machineDeployments": [
                        {
                            "class": "tkg-worker",
                            "metadata": {"annotations": dict(OS_ANNOTATION)},
                            "name": "md-0",
                            "replicas": 2,
                            "variables": {"overrides": [{"name": "worker", "value": {"machine": {"numCPUs": 8}}}]},
                        }
                    ]
                },
            }
        },
    }


def test_topology_patch_keeps_pool_fields(plane, kubeconfig):
    import kubernetes.client

    with plane.api_client() as client:
        kubernetes.client.CustomObjectsApi(client).create_namespaced_custom_object(
            "cluster.x-k8s.io", "v1beta1", "default", "clusters", lab_cluster(), field_manager="tanzu-double"
        )

    site = parse_site_config(site_dict(site={"name": "edge-01", "kind": "edge"}, managementStack="organization/tkg-gpu/mgmt"))
    overrides = mhc_topology.topology_overrides(site, build_profile(site, inventory()))
    live, crd = mhc_topology._read_cluster(kubeconfig.text, "default", "gpu-wc-01")
    keyed = mhc_topology.machine_deployments_keyed_by_name(crd)
    assert keyed is False

    spec = mhc_topology.topology_patch_spec(overrides, live, keyed, [])
    body = {"apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Cluster", "metadata": {"name": "gpu-wc-01", "namespace": "default"}, "spec": spec}
    applied = apply(plane, "/apis/cluster.x-k8s.io/v1beta1/namespaces/default/clusters/gpu-wc-01", body)

    topology = applied["spec"]["topology"]
    [entry] = topology["workers"]["machineDeployments"]
    assert (entry["class"], entry["replicas"]) == ("tkg-worker", 2)
    assert entry["variables"]["overrides"][0]["name"] == "worker"
    assert entry["metadata"] == {"annotations": OS_ANNOTATION}
    assert entry["machineHealthCheck"]["unhealthyConditions"][1] == {"type": "Ready", "status": "False", "timeout": "40m"}
    assert entry["strategy"]["type"] in ("RollingUpdate", "OnDelete")
    assert topology["controlPlane"]["replicas"] == 1
    assert topology["controlPlane"]["machineHealthCheck"]["nodeStartupTimeout"] == "60m"
    assert topology["class"] == "tkg-vsphere-default-v1.0.0"
    assert mhc_topology.topology_in_sync(applied, overrides) is True
