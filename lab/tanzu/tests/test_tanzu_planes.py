"""The double against a real kube-apiserver with kwok: CAPI objects, kubeconfig Secret and Nodes.

One lab control plane (lab/kube.py) serves as both the management and the workload cluster.
Clusters are seeded as a finished create leaves them, without VMs, and synced in-process the way
create ends. Scale-downs, node pools, kubeconfig and delete then run through the executable. The
module is skipped when the Kubernetes binaries are not on PATH.
"""

from __future__ import annotations

import base64
import json
import types

import pytest
import yaml

from lab.kube import wait_for

CLUSTER_API = ("cluster.x-k8s.io", "v1beta1")
CONTROL_PLANE_API = ("controlplane.cluster.x-k8s.io", "v1beta1")
GPU = "nvidia.com/gpu"


@pytest.fixture
def kube(kube_plane):
    """Typed clients of the official library for the test control plane."""
    import kubernetes.client

    with kube_plane.api_client() as client:
        yield types.SimpleNamespace(
            core=kubernetes.client.CoreV1Api(client), custom=kubernetes.client.CustomObjectsApi(client)
        )


@pytest.fixture
def seed(seed_cluster, state_dir, kube_plane):
    """Store a finished cluster without VMs whose workload server is the test control plane."""
    from tanzu_double.state import StateStore

    def run(name: str) -> dict:
        record = seed_cluster(name=name, with_vms=False)
        record["workloadServer"] = kube_plane.server
        StateStore(str(state_dir)).save(record)
        return record

    return run


def sync(state_dir, name: str, environ: dict[str, str], namespace: str = "default") -> None:
    """Bring the planes in line with the stored record, as the end of `cluster create` does."""
    from tanzu_double.lifecycle import sync_planes
    from tanzu_double.state import StateStore

    sync_planes(StateStore(str(state_dir)), namespace, name, {**environ, "TANZU_DOUBLE_STATE_DIR": str(state_dir)})


def cluster_nodes(kube, name: str, namespace: str = "default") -> dict[str, dict]:
    """Nodes of one cluster by name, as plain dicts."""
    nodes = {}
    for node in kube.core.list_node().items:
        annotations = node.metadata.annotations or {}
        if annotations.get("cluster.x-k8s.io/cluster-name") == name and annotations.get("cluster.x-k8s.io/cluster-namespace") == namespace:
            nodes[node.metadata.name] = kube.core.api_client.sanitize_for_serialization(node)
    return nodes


def get_custom(kube, api: tuple[str, str], plural: str, name: str, namespace: str = "default") -> dict | None:
    import kubernetes.client

    try:
        return kube.custom.get_namespaced_custom_object(*api, namespace, plural, name)
    except kubernetes.client.ApiException as error:
        if error.status == 404:
            return None
        raise


def deployments_of(kube, name: str, namespace: str = "default") -> dict[str, dict]:
    items = kube.custom.list_namespaced_custom_object(
        *CLUSTER_API, namespace, "machinedeployments", label_selector=f"cluster.x-k8s.io/cluster-name={name}"
    )["items"]
    return {item["metadata"]["labels"]["topology.cluster.x-k8s.io/deployment-name"]: item for item in items}


def secret_kubeconfig(kube, name: str, namespace: str = "default") -> dict:
    secret = kube.core.read_namespaced_secret(f"{name}-kubeconfig", namespace)
    return yaml.safe_load(base64.b64decode(secret.data["value"]))


class TestCreatedCluster:
    def test_cluster_api_objects(self, kube, seed, state_dir, plane_env, kube_plane):
        record = seed("objects")
        sync(state_dir, "objects", plane_env)

        cluster = get_custom(kube, CLUSTER_API, "clusters", "objects")
        assert cluster["metadata"]["labels"]["tkg.tanzu.vmware.com/cluster-name"] == "objects"
        assert cluster["metadata"]["labels"]["cluster.x-k8s.io/cluster-name"] == "objects"
        assert cluster["spec"]["topology"]["class"] == "tkg-vsphere-default-v1.0.0"
        assert cluster["spec"]["topology"]["controlPlane"]["replicas"] == 1
        assert cluster["spec"]["topology"]["workers"]["machineDeployments"][0]["replicas"] == 2
        variables = {item["name"]: item["value"] for item in cluster["spec"]["topology"]["variables"]}
        assert variables["pci"]["worker"]["devices"] == [{"deviceId": 0x20B5, "vendorId": 0x10DE}]
        assert cluster["status"]["phase"] == "Provisioned"
        assert cluster["status"]["controlPlaneReady"] is True
        assert cluster["status"]["observedGeneration"] == cluster["metadata"]["generation"]

        suffix = record["objectSuffixes"]["cluster"]
        control_plane = get_custom(kube, CONTROL_PLANE_API, "kubeadmcontrolplanes", f"objects-{suffix}")
        assert control_plane["spec"]["replicas"] == 1
        assert control_plane["status"]["readyReplicas"] == 1
        assert control_plane["metadata"]["ownerReferences"][0]["uid"] == cluster["metadata"]["uid"]

        deployments = deployments_of(kube, "objects")
        assert list(deployments) == ["md-0"]
        deployment = deployments["md-0"]
        assert deployment["metadata"]["name"] == f"objects-md-0-{record['objectSuffixes']['md-0']}"
        assert deployment["spec"]["replicas"] == 2
        assert deployment["status"]["readyReplicas"] == 2
        assert deployment["status"]["phase"] == "Running"

        secret = kube.core.read_namespaced_secret("objects-kubeconfig", "default")
        assert secret.type == "cluster.x-k8s.io/secret"
        assert secret.metadata.labels == {"cluster.x-k8s.io/cluster-name": "objects"}
        assert secret.metadata.owner_references[0].kind == "KubeadmControlPlane"
        kubeconfig = secret_kubeconfig(kube, "objects")
        assert kubeconfig["current-context"] == "objects-admin@objects"
        cluster_entry = kubeconfig["clusters"][0]["cluster"]
        assert cluster_entry["server"] == kube_plane.server
        assert "certificate-authority-data" in cluster_entry
        assert "client-key-data" in kubeconfig["users"][0]["user"]

    def test_nodes_ready_with_gpus(self, kube, seed, state_dir, plane_env):
        seed("nodes")
        sync(state_dir, "nodes", plane_env)

        nodes = cluster_nodes(kube, "nodes")
        assert sorted(nodes) == ["nodes-control-plane-aaaaa", "nodes-md-0-w0xyz", "nodes-md-0-w1xyz"]
        control_plane = nodes["nodes-control-plane-aaaaa"]
        assert control_plane["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
        assert control_plane["metadata"]["labels"]["node-role.kubernetes.io/control-plane"] == ""
        assert control_plane["spec"]["taints"] == [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
        assert GPU not in control_plane["status"]["capacity"]

        worker = nodes["nodes-md-0-w0xyz"]
        assert worker["metadata"]["labels"]["node.cluster.x-k8s.io/pool"] == "md-0"
        assert worker["metadata"]["labels"]["feature.node.kubernetes.io/pci-10de.present"] == "true"
        assert worker["status"]["capacity"][GPU] == "1"
        assert worker["status"]["allocatable"][GPU] == "1"
        assert worker["status"]["capacity"]["cpu"] == "16"
        assert worker["status"]["capacity"]["memory"] == "128Gi"

        def ready_with_gpu() -> bool:
            node = kube.core.read_node("nodes-md-0-w1xyz")
            conditions = {condition.type: condition.status for condition in node.status.conditions or []}
            return conditions.get("Ready") == "True" and node.status.allocatable.get(GPU) == "1"

        wait_for(ready_with_gpu, timeout=30, interval=0.3, message="kwok to mark the GPU worker Ready, keeping nvidia.com/gpu")

    def test_second_sync_writes_nothing(self, kube, seed, state_dir, plane_env):
        seed("steady")
        sync(state_dir, "steady", plane_env)
        before = get_custom(kube, CLUSTER_API, "clusters", "steady")["metadata"]["resourceVersion"]
        sync(state_dir, "steady", plane_env)
        assert get_custom(kube, CLUSTER_API, "clusters", "steady")["metadata"]["resourceVersion"] == before

    def test_workers_without_gpu_switch(self, kube, seed, state_dir, plane_env, tanzu):
        seed("nogpu")
        switch = state_dir / "switches" / "workers-without-gpu"
        switch.parent.mkdir(parents=True)
        switch.touch()
        sync(state_dir, "nogpu", plane_env)
        for name, node in cluster_nodes(kube, "nogpu").items():
            assert GPU not in node["status"]["capacity"], name
            assert GPU not in node["status"]["allocatable"], name

        # With the switch off, the next command that changes the cluster gives the workers their GPUs back.
        switch.unlink()
        result = tanzu("cluster", "scale", "nogpu", "-c", "1", env=plane_env)
        assert result.returncode == 0, result.stderr
        workers = [node for name, node in cluster_nodes(kube, "nogpu").items() if "-md-0-" in name]
        assert [node["status"]["allocatable"][GPU] for node in workers] == ["1", "1"]


class TestKubeconfigGet:
    def test_reads_secret(self, kube, seed, state_dir, plane_env, tanzu, tmp_path, kube_plane):
        import kubernetes.client
        import kubernetes.config

        seed("kubeconfig")
        sync(state_dir, "kubeconfig", plane_env)
        path = tmp_path / "exported"
        result = tanzu("cluster", "kubeconfig", "get", "kubeconfig", "--admin", "--export-file", str(path), env=plane_env)
        assert result.returncode == 0, result.stderr
        exported = yaml.safe_load(path.read_text())
        assert exported["current-context"] == "kubeconfig-admin@kubeconfig"
        assert exported["clusters"][0]["cluster"]["server"] == kube_plane.server

        # The exported credentials work against the workload cluster.
        with kubernetes.config.new_client_from_config(str(path)) as client:
            names = [node.metadata.name for node in kubernetes.client.CoreV1Api(client).list_node().items]
        assert "kubeconfig-md-0-w0xyz" in names

    def test_uses_secret_content(self, kube, seed, state_dir, plane_env, tanzu, tmp_path):
        seed("edited")
        sync(state_dir, "edited", plane_env)
        config = secret_kubeconfig(kube, "edited")
        config["clusters"][0]["cluster"]["server"] = "https://127.0.0.1:1"
        encoded = base64.b64encode(yaml.safe_dump(config).encode()).decode()
        kube.core.patch_namespaced_secret("edited-kubeconfig", "default", {"data": {"value": encoded}})

        path = tmp_path / "exported"
        result = tanzu("cluster", "kubeconfig", "get", "edited", "--admin", "--export-file", str(path), env=plane_env)
        assert result.returncode == 0, result.stderr
        assert yaml.safe_load(path.read_text())["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:1"

    def test_missing_secret(self, seed, plane_env, tanzu, tmp_path):
        seed("nosecret")
        result = tanzu("cluster", "kubeconfig", "get", "nosecret", "--admin", "--export-file", str(tmp_path / "out"), env=plane_env)
        assert result.returncode == 1
        assert result.stderr == (
            "Error: unable to get the kubeconfig of cluster 'nosecret': Secret default/nosecret-kubeconfig "
            "not found in the management cluster\n"
        )


class TestChanges:
    def test_scale_down_removes_node(self, kube, seed, state_dir, plane_env, tanzu):
        seed("down")
        sync(state_dir, "down", plane_env)
        result = tanzu("cluster", "scale", "down", "-w", "1", "-p", "md-0", env=plane_env)
        assert result.returncode == 0, result.stderr

        workers = [name for name in cluster_nodes(kube, "down") if "-md-0-" in name]
        assert len(workers) == 1
        deployment = deployments_of(kube, "down")["md-0"]
        assert deployment["spec"]["replicas"] == 1
        assert deployment["status"]["replicas"] == 1
        cluster = get_custom(kube, CLUSTER_API, "clusters", "down")
        assert cluster["spec"]["topology"]["workers"]["machineDeployments"][0]["replicas"] == 1

    def test_topology_patch_survives_scale(self, kube, seed, state_dir, plane_env, tanzu):
        seed("kept")
        sync(state_dir, "kept", plane_env)
        cluster = get_custom(kube, CLUSTER_API, "clusters", "kept")
        topology = cluster["spec"]["topology"]
        health_check = {"enable": True, "unhealthyConditions": [{"type": "Ready", "status": "Unknown", "timeout": "10m"}]}
        topology["controlPlane"]["machineHealthCheck"] = health_check
        topology["workers"]["machineDeployments"][0]["machineHealthCheck"] = health_check
        kube.custom.patch_namespaced_custom_object(*CLUSTER_API, "default", "clusters", "kept", {"spec": {"topology": topology}})

        result = tanzu("cluster", "scale", "kept", "-w", "1", env=plane_env)
        assert result.returncode == 0, result.stderr
        topology = get_custom(kube, CLUSTER_API, "clusters", "kept")["spec"]["topology"]
        assert topology["controlPlane"]["machineHealthCheck"] == health_check
        [pool] = topology["workers"]["machineDeployments"]
        assert pool["machineHealthCheck"] == health_check
        assert pool["replicas"] == 1

    def test_node_pool_set_and_delete(self, kube, seed, state_dir, plane_env, tanzu, tmp_path):
        seed("pools")
        sync(state_dir, "pools", plane_env)
        pool = tmp_path / "pool.yaml"
        pool.write_text("name: md-1\nreplicas: 2\nlabels:\n  tier: inference\n")
        result = tanzu("cluster", "node-pool", "set", "pools", "-f", str(pool), "--base-machine-deployment", "md-0", env=plane_env)
        assert result.returncode == 0, result.stderr

        assert sorted(deployments_of(kube, "pools")) == ["md-0", "md-1"]
        new_nodes = [node for name, node in cluster_nodes(kube, "pools").items() if "-md-1-" in name]
        assert len(new_nodes) == 2
        for node in new_nodes:
            assert node["metadata"]["labels"]["node.cluster.x-k8s.io/pool"] == "md-1"
            assert node["metadata"]["labels"]["tier"] == "inference"
            assert node["status"]["capacity"][GPU] == "1"
        names = [item["name"] for item in get_custom(kube, CLUSTER_API, "clusters", "pools")["spec"]["topology"]["workers"]["machineDeployments"]]
        assert names == ["md-0", "md-1"]

        result = tanzu("cluster", "node-pool", "delete", "pools", "-n", "md-1", env=plane_env)
        assert result.returncode == 0, result.stderr
        assert sorted(deployments_of(kube, "pools")) == ["md-0"]
        assert not [name for name in cluster_nodes(kube, "pools") if "-md-1-" in name]

    def test_delete_removes_everything(self, kube, seed, state_dir, plane_env, tanzu):
        record = seed("gone")
        sync(state_dir, "gone", plane_env)
        deleted = tanzu("cluster", "delete", "gone", "-y", env={**plane_env, "TANZU_DOUBLE_DELETE_DELAY_SECONDS": "600"})
        assert deleted.returncode == 0, deleted.stderr
        assert get_custom(kube, CLUSTER_API, "clusters", "gone")["status"]["phase"] == "Deleting"

        listed = tanzu("cluster", "list", "-o", "json", env=plane_env)
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout or "[]") == []
        assert get_custom(kube, CLUSTER_API, "clusters", "gone") is None
        suffix = record["objectSuffixes"]["cluster"]
        assert get_custom(kube, CONTROL_PLANE_API, "kubeadmcontrolplanes", f"gone-{suffix}") is None
        assert deployments_of(kube, "gone") == {}
        assert [secret.metadata.name for secret in kube.core.list_namespaced_secret("default").items if secret.metadata.name == "gone-kubeconfig"] == []
        assert cluster_nodes(kube, "gone") == {}

    def test_create_rejects_existing_cluster_object(self, kube, plane_env, tanzu, write_config, state_dir):
        body = {"apiVersion": "cluster.x-k8s.io/v1beta1", "kind": "Cluster", "metadata": {"name": "taken", "namespace": "default"}, "spec": {}}
        kube.custom.create_namespaced_custom_object(*CLUSTER_API, "default", "clusters", body)
        result = tanzu("cluster", "create", "-f", str(write_config({"CLUSTER_NAME": "taken"})), env=plane_env)
        assert result.returncode == 1
        assert "cluster 'taken' already exists in namespace 'default' of the management cluster" in result.stderr
        assert not (state_dir / "clusters" / "default" / "taken.json").exists()
