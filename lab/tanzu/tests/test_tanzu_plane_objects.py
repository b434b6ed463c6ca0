"""CAPI objects and Nodes built from cluster records, and plane errors that need no API server."""

from __future__ import annotations

import base64
import socket

import pytest
import yaml
from tanzu_double_testdata import BASE_CONFIG, GPU_SETTINGS


def make_record(changes: dict | None = None, worker_phases: tuple[str, ...] = ("Running", "Running")) -> dict:
    from tanzu_double import records
    from tanzu_double.config import FlatConfig
    from tanzu_double.endpoint import Connection
    from tanzu_double.validation import build_cluster_spec

    values = dict(BASE_CONFIG, **GPU_SETTINGS)
    values.update(changes or {})
    values["WORKER_MACHINE_COUNT"] = len(worker_phases)
    spec = build_cluster_spec(FlatConfig(values, environ={}), "gpu-test", "default", None)
    record = records.new_record(spec, Connection("127.0.0.1:0", True, None), environ={})
    control_plane = records.new_machine("gpu-test-control-plane-aaaaa", "control-plane", None)
    control_plane["phase"] = "Running"
    record["machines"].append(control_plane)
    for index, phase in enumerate(worker_phases):
        machine = records.new_machine(f"gpu-test-md-0-w{index}", "worker", "md-0")
        machine["phase"] = phase
        record["machines"].append(machine)
    record["createFinished"] = True
    record["phase"] = "running"
    return record


def spec_of(record_changes: dict | None = None):
    from tanzu_double.config import FlatConfig
    from tanzu_double.validation import build_cluster_spec

    values = dict(BASE_CONFIG, **GPU_SETTINGS)
    values.update(record_changes or {})
    return build_cluster_spec(FlatConfig(values, environ={}), "gpu-test", "default", None)


LIVE_CLUSTER = {
    "apiVersion": "cluster.x-k8s.io/v1beta1",
    "kind": "Cluster",
    "metadata": {"name": "gpu-test", "namespace": "default", "uid": "1234"},
}


class TestClusterObject:
    def test_matches_render(self):
        from tanzu_double import capi_objects, render

        record = make_record()
        rendered = render.cluster_object(spec_of({"WORKER_MACHINE_COUNT": 2}))
        cluster = capi_objects.cluster_object(record)
        assert cluster["apiVersion"] == "cluster.x-k8s.io/v1beta1"
        assert cluster["kind"] == "Cluster"
        assert cluster["metadata"]["name"] == "gpu-test"
        assert cluster["metadata"]["namespace"] == "default"
        assert cluster["spec"]["topology"] == rendered["spec"]["topology"]
        assert cluster["spec"]["clusterNetwork"] == rendered["spec"]["clusterNetwork"]
        assert cluster["metadata"]["annotations"] == rendered["metadata"]["annotations"]
        assert rendered["metadata"]["labels"].items() <= cluster["metadata"]["labels"].items()

    def test_labels_and_references(self):
        from tanzu_double import capi_objects

        record = make_record()
        cluster = capi_objects.cluster_object(record)
        suffix = record["objectSuffixes"]["cluster"]
        assert cluster["metadata"]["labels"]["cluster.x-k8s.io/cluster-name"] == "gpu-test"
        assert cluster["metadata"]["labels"]["run.tanzu.vmware.com/tkr"] == record["tkr"]
        assert cluster["spec"]["controlPlaneRef"]["name"] == f"gpu-test-{suffix}"
        assert cluster["spec"]["controlPlaneRef"]["kind"] == "KubeadmControlPlane"
        assert cluster["spec"]["infrastructureRef"]["kind"] == "VSphereCluster"
        assert cluster["spec"]["controlPlaneEndpoint"] == {"host": "127.0.0.1", "port": 6443}

    @pytest.mark.parametrize(
        ("record_phase", "control_plane_phase", "expected"),
        [
            ("running", "Running", "Provisioned"),
            ("creating", "Provisioning", "Provisioning"),
            ("createStalled", "Running", "Provisioned"),
            ("deleting", "Running", "Deleting"),
        ],
    )
    def test_status_phase(self, record_phase, control_plane_phase, expected):
        from tanzu_double import capi_objects

        record = make_record()
        record["phase"] = record_phase
        record["machines"][0]["phase"] = control_plane_phase
        status = capi_objects.cluster_object(record)["status"]
        assert status["phase"] == expected
        assert status["controlPlaneReady"] is (control_plane_phase == "Running")
        assert status["infrastructureReady"] is True

    def test_old_record_without_cluster_network(self):
        from tanzu_double import capi_objects

        record = make_record()
        del record["clusterNetwork"]
        network = capi_objects.cluster_object(record)["spec"]["clusterNetwork"]
        assert network["pods"]["cidrBlocks"] == ["100.96.0.0/11"]
        assert network["services"]["cidrBlocks"] == ["100.64.0.0/13"]


class TestControlPlaneAndDeployments:
    def test_kubeadm_control_plane(self):
        from tanzu_double import capi_objects

        record = make_record()
        control_plane = capi_objects.kubeadm_control_plane_object(record, LIVE_CLUSTER)
        suffix = record["objectSuffixes"]["cluster"]
        assert control_plane["apiVersion"] == "controlplane.cluster.x-k8s.io/v1beta1"
        assert control_plane["metadata"]["name"] == f"gpu-test-{suffix}"
        assert control_plane["metadata"]["labels"]["cluster.x-k8s.io/cluster-name"] == "gpu-test"
        assert control_plane["metadata"]["ownerReferences"][0]["uid"] == "1234"
        assert control_plane["spec"]["replicas"] == 1
        assert control_plane["spec"]["version"] == record["kubernetesVersion"]
        assert control_plane["status"]["readyReplicas"] == 1
        assert control_plane["status"]["initialized"] is True

    def test_machine_deployment_per_pool(self):
        from tanzu_double import capi_objects

        record = make_record(worker_phases=("Running", "Failed"))
        [deployment] = capi_objects.machine_deployment_objects(record, LIVE_CLUSTER)
        suffix = record["objectSuffixes"]["md-0"]
        assert deployment["metadata"]["name"] == f"gpu-test-md-0-{suffix}"
        assert deployment["metadata"]["labels"]["topology.cluster.x-k8s.io/deployment-name"] == "md-0"
        assert deployment["metadata"]["labels"]["cluster.x-k8s.io/cluster-name"] == "gpu-test"
        assert "uid" not in deployment["metadata"]
        assert deployment["spec"]["replicas"] == 2
        assert deployment["status"]["readyReplicas"] == 1
        assert "observedGeneration" not in deployment["status"]

    def test_kubeconfig_secret(self):
        from tanzu_double import capi_objects

        record = make_record()
        kubeconfig = {"apiVersion": "v1", "kind": "Config", "clusters": [], "contexts": [], "users": []}
        secret = capi_objects.kubeconfig_secret_object(record, kubeconfig, LIVE_CLUSTER)
        assert secret["metadata"]["name"] == "gpu-test-kubeconfig"
        assert secret["type"] == "cluster.x-k8s.io/secret"
        assert secret["metadata"]["labels"] == {"cluster.x-k8s.io/cluster-name": "gpu-test"}
        assert yaml.safe_load(base64.b64decode(secret["data"]["value"])) == kubeconfig


class TestNodeObjects:
    def test_control_plane_node(self):
        from tanzu_double import node_objects

        nodes = node_objects.node_objects(make_record())
        control_plane = nodes[0]
        assert control_plane["metadata"]["name"] == "gpu-test-control-plane-aaaaa"
        assert control_plane["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake"
        assert control_plane["metadata"]["labels"]["node-role.kubernetes.io/control-plane"] == ""
        assert control_plane["spec"]["taints"] == [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
        assert "nvidia.com/gpu" not in control_plane["status"]["capacity"]
        # Control plane defaults of TKG: 2 CPUs, 8 GiB.
        assert control_plane["status"]["capacity"]["cpu"] == "2"
        assert control_plane["status"]["capacity"]["memory"] == "8192Mi"

    def test_gpu_worker_node(self):
        from tanzu_double import node_objects

        worker = node_objects.node_objects(make_record())[1]
        labels = worker["metadata"]["labels"]
        assert labels["node.cluster.x-k8s.io/pool"] == "md-0"
        assert labels["feature.node.kubernetes.io/pci-10de.present"] == "true"
        assert "node-role.kubernetes.io/control-plane" not in labels
        assert "taints" not in worker["spec"]
        assert worker["status"]["capacity"] == {
            "cpu": "16",
            "memory": "131072Mi",
            "ephemeral-storage": "40Gi",
            "pods": "110",
            "nvidia.com/gpu": "1",
        }
        assert worker["status"]["allocatable"] == worker["status"]["capacity"]
        assert worker["metadata"]["annotations"]["cluster.x-k8s.io/cluster-name"] == "gpu-test"
        assert worker["metadata"]["annotations"]["cluster.x-k8s.io/cluster-namespace"] == "default"
        assert worker["status"]["nodeInfo"]["osImage"] == "Ubuntu 22.04"

    def test_gpu_count_per_device(self):
        from tanzu_double import node_objects

        record = make_record({"VSPHERE_WORKER_PCI_DEVICES": "0x10DE:0x20B5,0x10DE:0x20B5"})
        worker = node_objects.node_objects(record)[1]
        assert worker["status"]["capacity"]["nvidia.com/gpu"] == "2"

    def test_non_nvidia_devices_not_counted(self):
        from tanzu_double import node_objects

        record = make_record({"VSPHERE_WORKER_PCI_DEVICES": "0x1002:0x740F"})
        worker = node_objects.node_objects(record)[1]
        assert "nvidia.com/gpu" not in worker["status"]["capacity"]
        assert "feature.node.kubernetes.io/pci-10de.present" not in worker["metadata"]["labels"]

    def test_workers_without_gpu_switch(self):
        from tanzu_double import node_objects

        nodes = node_objects.node_objects(make_record(), workers_without_gpu=True)
        for worker in nodes[1:]:
            assert "nvidia.com/gpu" not in worker["status"]["capacity"]
            assert "nvidia.com/gpu" not in worker["status"]["allocatable"]

    def test_only_running_machines(self):
        from tanzu_double import node_objects

        nodes = node_objects.node_objects(make_record(worker_phases=("Running", "Failed", "Provisioning")))
        assert [node["metadata"]["name"] for node in nodes] == ["gpu-test-control-plane-aaaaa", "gpu-test-md-0-w0"]

    def test_pool_labels_taints_and_size_override(self):
        from tanzu_double import node_objects, records

        record = make_record()
        [deployment] = records.machine_deployments(record)
        deployment["variables"] = {
            "overrides": [
                {"name": "nodePoolLabels", "value": [{"key": "tier", "value": "gpu"}]},
                {"name": "nodePoolTaints", "value": [{"key": "gpu", "value": "true", "effect": "NoSchedule"}]},
                {"name": "worker", "value": {"count": 2, "machine": {"numCPUs": 8, "memoryMiB": 65536, "diskGiB": 80}}},
            ]
        }
        worker = node_objects.node_objects(record)[1]
        assert worker["metadata"]["labels"]["tier"] == "gpu"
        assert worker["spec"]["taints"] == [{"key": "gpu", "value": "true", "effect": "NoSchedule"}]
        assert worker["status"]["capacity"]["cpu"] == "8"
        assert worker["status"]["capacity"]["memory"] == "65536Mi"
        # The pci variable has no override, so the cluster-wide GPU stays.
        assert worker["status"]["capacity"]["nvidia.com/gpu"] == "1"


class TestNodeStatusPatch:
    def test_no_change(self):
        from tanzu_double import node_objects, planes

        [_, worker, _] = node_objects.node_objects(make_record())
        live = {"status": {**worker["status"], "conditions": [{"type": "Ready", "status": "True"}]}}
        assert planes._node_status_patch(live, worker) == {}

    def test_quantities_compared_by_value(self):
        from tanzu_double import node_objects, planes

        [_, worker, _] = node_objects.node_objects(make_record())
        stored = {key: dict(worker["status"][key], memory="128Gi") for key in ("capacity", "allocatable")}
        assert planes._node_status_patch({"status": {**worker["status"], **stored}}, worker) == {}

    def test_gpu_removed_with_null(self):
        from tanzu_double import node_objects, planes

        record = make_record()
        with_gpu = node_objects.node_objects(record)[1]
        without_gpu = node_objects.node_objects(record, workers_without_gpu=True)[1]
        patch = planes._node_status_patch({"status": with_gpu["status"]}, without_gpu)
        assert patch == {"capacity": {"nvidia.com/gpu": None}, "allocatable": {"nvidia.com/gpu": None}}


class TestSelfContainedKubeconfig:
    def test_files_embedded(self, tmp_path):
        from tanzu_double.kubeconfig import self_contained

        (tmp_path / "ca.crt").write_bytes(b"CA")
        (tmp_path / "admin.key").write_bytes(b"KEY")
        (tmp_path / "token").write_text("abc\n")
        config = {
            "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1", "certificate-authority": str(tmp_path / "ca.crt")}}],
            "users": [
                {"name": "u", "user": {"client-key": str(tmp_path / "admin.key"), "client-certificate-data": "Q0VSVA=="}},
                {"name": "t", "user": {"tokenFile": str(tmp_path / "token")}},
            ],
        }
        result = self_contained(config)
        cluster = result["clusters"][0]["cluster"]
        assert cluster == {"server": "https://127.0.0.1:1", "certificate-authority-data": "Q0E="}
        assert result["users"][0]["user"] == {"client-key-data": "S0VZ", "client-certificate-data": "Q0VSVA=="}
        assert result["users"][1]["user"] == {"token": "abc"}

    def test_missing_file(self, tmp_path):
        from tanzu_double.errors import CliError
        from tanzu_double.kubeconfig import self_contained

        config = {"clusters": [], "users": [{"name": "u", "user": {"client-key": str(tmp_path / "gone.key")}}]}
        with pytest.raises(CliError, match="unable to read the client-key file"):
            self_contained(config)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


KEY_DATA = base64.b64encode(b"-----BEGIN EC PRIVATE KEY-----\nnot-a-key\n").decode()


def unreachable_kubeconfig(tmp_path) -> str:
    """Write a kubeconfig for a loopback port where nothing listens. Its key data must never be printed."""
    path = tmp_path / "unreachable.kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "lab",
                "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "lab"}}],
                "clusters": [{"name": "lab", "cluster": {"server": f"https://127.0.0.1:{free_port()}", "insecure-skip-tls-verify": True}}],
                "users": [{"name": "lab", "user": {"token": "secret-token-value", "client-key-data": KEY_DATA}}],
            }
        )
    )
    return str(path)


class TestPlaneErrors:
    def test_unreachable_management_cluster(self, tanzu, seed_cluster, tmp_path):
        seed_cluster(with_vms=False)
        env = {"TANZU_DOUBLE_MANAGEMENT_KUBECONFIG": unreachable_kubeconfig(tmp_path)}
        result = tanzu("cluster", "kubeconfig", "get", "gpu-test", "--admin", "--export-file", str(tmp_path / "out"), env=env)
        assert result.returncode == 1
        assert result.stderr.startswith("Error: management cluster (TANZU_DOUBLE_MANAGEMENT_KUBECONFIG): ")
        assert "cannot connect to https://127.0.0.1:" in result.stderr
        assert "Traceback" not in result.stderr
        assert "secret-token-value" not in result.stderr
        assert KEY_DATA not in result.stderr
        assert result.stderr.count("\n") == 1

    def test_unreachable_workload_cluster_on_scale(self, tanzu, seed_cluster, tmp_path):
        seed_cluster(with_vms=False)
        env = {"TANZU_DOUBLE_WORKLOAD_KUBECONFIG": unreachable_kubeconfig(tmp_path)}
        result = tanzu("cluster", "scale", "gpu-test", "-w", "1", env=env)
        assert result.returncode == 1
        assert "Error: workload cluster (TANZU_DOUBLE_WORKLOAD_KUBECONFIG): " in result.stderr
        assert "Traceback" not in result.stderr
        assert "secret-token-value" not in result.stderr

    def test_invalid_kubeconfig_yaml(self, tanzu, seed_cluster, tmp_path):
        seed_cluster(with_vms=False)
        path = tmp_path / "broken.kubeconfig"
        path.write_text("users:\n- name: u\n  user: {token: secret-token-value\n")
        env = {"TANZU_DOUBLE_MANAGEMENT_KUBECONFIG": str(path)}
        result = tanzu("cluster", "kubeconfig", "get", "gpu-test", "--admin", "--export-file", str(tmp_path / "out"), env=env)
        assert result.returncode == 1
        assert "is not valid YAML" in result.stderr
        assert "secret-token-value" not in result.stderr

    def test_missing_kubeconfig_file(self, tanzu, seed_cluster, tmp_path):
        seed_cluster(with_vms=False)
        env = {"TANZU_DOUBLE_MANAGEMENT_KUBECONFIG": str(tmp_path / "none")}
        pool = tmp_path / "pool.yaml"
        pool.write_text("name: md-1\nreplicas: 1\n")
        result = tanzu("cluster", "node-pool", "set", "gpu-test", "-f", str(pool), "--base-machine-deployment", "md-0", env=env)
        assert result.returncode == 1
        assert "reading the kubeconfig file failed" in result.stderr

    def test_deletion_waits_for_management_cluster(self, tanzu, seed_cluster, tmp_path, state_dir):
        seed_cluster(with_vms=False)
        env = {"TANZU_DOUBLE_MANAGEMENT_KUBECONFIG": unreachable_kubeconfig(tmp_path), "TANZU_DOUBLE_DELETE_DELAY_SECONDS": "0"}
        deleted = tanzu("cluster", "delete", "gpu-test", "-y", env=env)
        assert deleted.returncode == 0
        assert "could not be marked as deleting" in deleted.stderr
        listed = tanzu("cluster", "list", "-o", "json", env=env)
        assert listed.returncode == 0
        assert "cannot finish deleting yet" in listed.stderr
        assert (state_dir / "clusters" / "default" / "gpu-test.json").exists()
        # Without the variable the deletion completes.
        assert tanzu("cluster", "list", "-o", "json", env={"TANZU_DOUBLE_DELETE_DELAY_SECONDS": "0"}).stdout == "[]"
