"""CLI surface of bin/tanzu, run as a subprocess. None of these tests needs a vCenter."""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml
from tanzu_double_testdata import GPU_SETTINGS, TEST_PASSWORD


def assert_no_secret(result) -> None:
    assert TEST_PASSWORD not in result.stdout
    assert TEST_PASSWORD not in result.stderr


def cluster_document(stdout: str) -> dict:
    documents = [doc for doc in yaml.safe_load_all(stdout) if doc]
    clusters = [doc for doc in documents if doc.get("kind") == "Cluster"]
    assert len(clusters) == 1
    return clusters[0]


def variables_of(cluster: dict) -> dict[str, object]:
    return {item["name"]: item["value"] for item in cluster["spec"]["topology"]["variables"]}


class TestHelpAndVersion:
    def test_root_help(self, tanzu):
        result = tanzu("--help")
        assert result.returncode == 0
        assert "cluster" in result.stdout

    def test_create_help_hides_hidden_flags(self, tanzu):
        result = tanzu("cluster", "create", "--help")
        assert result.returncode == 0
        assert "-f, --file string" in result.stdout
        assert "-d, --dry-run" in result.stdout
        assert "--timeout" not in result.stdout
        assert "--namespace" not in result.stdout

    def test_cluster_alias(self, tanzu):
        assert tanzu("cl", "--help").returncode == 0

    def test_versions(self, tanzu):
        assert tanzu("version").stdout.startswith("version: v0.29.0\n")
        assert tanzu("cluster", "version").stdout == "v0.29.0\n"


class TestCobraErrors:
    def test_get_rejects_output_flag(self, tanzu):
        result = tanzu("cluster", "get", "gpu-test", "-o", "json")
        assert result.returncode == 1
        assert result.stderr == "Error: unknown shorthand flag: 'o' in -o\n"
        assert result.stdout == ""

    def test_get_rejects_long_output_flag(self, tanzu):
        result = tanzu("cluster", "get", "--output=json", "gpu-test")
        assert result.returncode == 1
        assert "unknown flag: --output" in result.stderr

    def test_get_needs_one_argument(self, tanzu):
        result = tanzu("cluster", "get")
        assert result.returncode == 1
        assert "accepts 1 arg(s), received 0" in result.stderr

    def test_unknown_command(self, tanzu):
        result = tanzu("cluster", "explode")
        assert result.returncode == 1
        assert 'unknown command "explode" for "tanzu cluster"' in result.stderr

    def test_invalid_timeout(self, tanzu, write_config):
        result = tanzu("cluster", "create", "-f", str(write_config()), "-t", "soon", "--dry-run")
        assert result.returncode == 1
        assert 'invalid argument "soon" for "-t, --timeout" flag' in result.stderr

    def test_node_pool_set_namespace_has_no_shorthand(self, tanzu, tmp_path):
        pool = tmp_path / "pool.yaml"
        pool.write_text("name: extra\n")
        result = tanzu("cluster", "node-pool", "set", "gpu-test", "-f", str(pool), "-n", "default")
        assert result.returncode == 1
        assert "unknown shorthand flag: 'n' in -n" in result.stderr

    def test_node_pool_set_requires_file(self, tanzu):
        result = tanzu("cluster", "node-pool", "set", "gpu-test")
        assert result.returncode == 1
        assert 'required flag(s) "file" not set' in result.stderr

    def test_state_dir_required(self, tanzu):
        result = tanzu("cluster", "list", env={"TANZU_DOUBLE_STATE_DIR": ""})
        assert result.returncode == 1
        assert "TANZU_DOUBLE_STATE_DIR" in result.stderr


class TestDryRun:
    def test_gpu_cluster_objects(self, tanzu, write_config, state_dir):
        result = tanzu("cluster", "create", "-f", str(write_config(GPU_SETTINGS)), "--dry-run")
        assert result.returncode == 0, result.stderr
        cluster = cluster_document(result.stdout)
        assert cluster["metadata"]["name"] == "gpu-test"
        assert cluster["spec"]["topology"]["class"] == "tkg-vsphere-default-v1.0.0"
        variables = variables_of(cluster)
        assert variables["pci"] == {"worker": {"devices": [{"deviceId": 8373, "vendorId": 4318}], "hardwareVersion": "vmx-19"}}
        machine = variables["worker"]["machine"]
        assert machine["customVMXKeys"] == {"pciPassthru.use64bitMMIO": "TRUE", "pciPassthru.64bitMMIOSizeGB": "256"}
        assert machine["memoryMiB"] == 131072
        assert cluster["spec"]["topology"]["workers"]["machineDeployments"][0]["replicas"] == 2
        assert not state_dir.exists()
        assert_no_secret(result)

    def test_name_argument_and_namespace(self, tanzu, write_config):
        result = tanzu("cluster", "create", "edge-1", "-f", str(write_config()), "-d", "-n", "site-a")
        cluster = cluster_document(result.stdout)
        assert (cluster["metadata"]["name"], cluster["metadata"]["namespace"]) == ("edge-1", "site-a")

    def test_works_without_state_dir(self, tanzu, write_config):
        result = tanzu("cluster", "create", "-f", str(write_config()), "-d", env={"TANZU_DOUBLE_STATE_DIR": ""})
        assert result.returncode == 0

    def test_existing_cluster_is_no_error(self, tanzu, write_config, seed_cluster):
        seed_cluster()
        assert tanzu("cluster", "create", "-f", str(write_config()), "-d").returncode == 0

    def test_no_pci_variable_without_devices(self, tanzu, write_config):
        cluster = cluster_document(tanzu("cluster", "create", "-f", str(write_config()), "-d").stdout)
        assert "pci" not in variables_of(cluster)


class TestValidationFailures:
    @pytest.mark.parametrize(
        "changes, expected",
        [
            ({**GPU_SETTINGS, "VSPHERE_WORKER_PCI_DEVICES": "0x10DE;0x20B5"}, "VSPHERE_CONTROL_PLANE_PCI_DEVICES"),
            ({**GPU_SETTINGS, "VSPHERE_WORKER_PCI_DEVICES": "0x10DE:0xGPU0"}, "int: invalid literal with base 16: 0xGPU0"),
            ({**GPU_SETTINGS, "VSPHERE_IGNORE_PCI_DEVICES_ALLOW_LIST": None}, "0x10DE:0x20B5 is not on the allow-list"),
            ({"VSPHERE_WORKER_CUSTOM_VMX_KEYS": "pciPassthru.use64bitMMIO"}, "VSPHERE_WORKER_CUSTOM_VMX_KEYS"),
            ({"VSPHERE_WORKER_HARDWARE_VERSION": "19"}, "VSPHERE_WORKER_HARDWARE_VERSION"),
            ({"WORKER_ROLLOUT_STRATEGY": "Surge"}, "WORKER_ROLLOUT_STRATEGY"),
            ({"MHC_FALSE_STATUS_TIMEOUT": "40"}, "MHC_FALSE_STATUS_TIMEOUT"),
            ({"NODE_STARTUP_TIMEOUT": "1d"}, "NODE_STARTUP_TIMEOUT"),
            ({"VSPHERE_PASSWORD": None}, "missing configuration variables: VSPHERE_PASSWORD"),
            ({"CLUSTER_NAME": "GPU_1"}, "invalid cluster name"),
        ],
    )
    def test_dry_run_and_create_reject(self, tanzu, write_config, changes, expected):
        path = str(write_config(changes))
        for extra in (["--dry-run"], []):
            result = tanzu("cluster", "create", "-f", path, *extra)
            assert result.returncode == 1
            assert result.stdout == ""
            assert result.stderr.splitlines()[-1].startswith("Error: ")
            assert expected in result.stderr
            assert_no_secret(result)

    def test_worker_error_never_names_worker_variable(self, tanzu, write_config):
        path = write_config({**GPU_SETTINGS, "VSPHERE_WORKER_PCI_DEVICES": "10DE-20B5"})
        result = tanzu("cluster", "create", "-f", str(path), "-d")
        assert "VSPHERE_WORKER_PCI_DEVICES" not in result.stderr

    def test_missing_file(self, tanzu, tmp_path):
        result = tanzu("cluster", "create", "-f", str(tmp_path / "absent.yaml"), "-d")
        assert result.returncode == 1
        assert "unable to read configuration file" in result.stderr

    def test_yaml_syntax_error_hides_content(self, tanzu, tmp_path):
        path = tmp_path / "broken.yaml"
        path.write_text(f"VSPHERE_PASSWORD: {TEST_PASSWORD}\nCLUSTER_NAME: [unclosed\n")
        result = tanzu("cluster", "create", "-f", str(path), "-d")
        assert result.returncode == 1
        assert "line" in result.stderr
        assert_no_secret(result)

    def test_environment_overrides_file(self, tanzu, write_config):
        result = tanzu("cluster", "create", "-f", str(write_config()), "-d", env={"WORKER_MACHINE_COUNT": "5"})
        cluster = cluster_document(result.stdout)
        assert cluster["spec"]["topology"]["workers"]["machineDeployments"][0]["replicas"] == 5

    def test_existing_name_rejected_before_vcenter(self, tanzu, write_config, seed_cluster):
        seed_cluster()
        result = tanzu("cluster", "create", "-f", str(write_config()))
        assert result.returncode == 1
        assert "already exists" in result.stderr
        assert_no_secret(result)


class _ClosingServer:
    """A TCP server on 127.0.0.1 that accepts connections and closes them at once."""

    def __init__(self):
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(8)
        self.port = self.socket.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            connection.close()

    def close(self):
        self.socket.close()


def test_create_fails_cleanly_without_vcenter(tanzu, write_config):
    server = _ClosingServer()
    try:
        result = tanzu("cluster", "create", "-f", str(write_config({"VSPHERE_SERVER": f"127.0.0.1:{server.port}"})))
    finally:
        server.close()
    assert result.returncode == 1
    assert "cannot connect to vCenter" in result.stderr
    assert_no_secret(result)
    assert json.loads(tanzu("cluster", "list", "-o", "json").stdout) == []


class TestList:
    def test_empty_json_array(self, tanzu):
        result = tanzu("cluster", "list", "-o", "json")
        assert result.returncode == 0
        assert result.stdout == "[]"

    def test_json_fields(self, tanzu, seed_cluster):
        seed_cluster()
        result = tanzu("cluster", "list", "-o", "json")
        [info] = json.loads(result.stdout)
        assert list(info) == ["name", "namespace", "status", "plan", "controlplane", "workers", "kubernetes", "roles", "tkr", "labels"]
        assert info["status"] == "running"
        assert (info["controlplane"], info["workers"]) == ("1/1", "2/2")
        assert info["roles"] == []
        assert info["plan"] == "dev"
        assert info["labels"]["tkg.tanzu.vmware.com/cluster-name"] == "gpu-test"
        assert info["tkr"] == "v1.25.7---vmware.2-tkg.1"
        assert info["kubernetes"] == "v1.25.7+vmware.2"

    def test_stalled_cluster_counts(self, tanzu, seed_cluster):
        seed_cluster(worker_phases=("Running", "Failed"), phase="createStalled")
        [info] = json.loads(tanzu("cluster", "list", "-o", "json").stdout)
        assert (info["status"], info["workers"]) == ("createStalled", "1/2")

    def test_creating_with_dead_creator_is_stalled(self, tanzu, seed_cluster, state_dir):
        record = seed_cluster(phase="creating")
        path = state_dir / "clusters" / "default" / "gpu-test.json"
        data = json.loads(path.read_text())
        data.update(createFinished=False, creatorPid=2**22 + 12345)
        path.write_text(json.dumps(data))
        [info] = json.loads(tanzu("cluster", "list", "-o", "json").stdout)
        assert record["name"] == info["name"]
        assert info["status"] == "createStalled"

    def test_namespaces(self, tanzu, seed_cluster):
        seed_cluster("a1", "default")
        seed_cluster("b1", "site-b")
        names = lambda *args: [item["name"] for item in json.loads(tanzu("cluster", "list", "-o", "json", *args).stdout)]
        assert names() == ["a1"]
        assert names("-n", "site-b") == ["b1"]
        assert names("-A") == ["a1", "b1"]

    def test_management_cluster(self, tanzu):
        assert json.loads(tanzu("cluster", "list", "-o", "json", "--include-management-cluster").stdout) == []
        [management] = json.loads(tanzu("cluster", "list", "-A", "-o", "json", "--include-management-cluster").stdout)
        assert management["roles"] == ["management"]

    def test_table_and_yaml(self, tanzu, seed_cluster):
        seed_cluster()
        table = tanzu("cluster", "list").stdout.splitlines()
        assert table[0].split() == ["NAME", "NAMESPACE", "STATUS", "CONTROLPLANE", "WORKERS", "KUBERNETES", "ROLES", "PLAN", "TKR"]
        assert table[1].split()[:3] == ["gpu-test", "default", "running"]
        assert "<none>" in table[1]
        [item] = yaml.safe_load(tanzu("cluster", "list", "-o", "yaml").stdout)
        assert item["roles"] == []


class TestGet:
    def test_table_and_tree(self, tanzu, seed_cluster):
        seed_cluster(worker_phases=("Running", "Failed"), phase="createStalled")
        result = tanzu("cluster", "get", "gpu-test")
        assert result.returncode == 0
        lines = result.stdout.splitlines()
        assert lines[0].split() == ["NAME", "NAMESPACE", "STATUS", "CONTROLPLANE", "WORKERS", "KUBERNETES", "ROLES", "TKR"]
        assert "createStalled" in lines[1]
        assert "Details:" in result.stderr
        assert "Details:" not in result.stdout
        assert "MachineDeployment/gpu-test-md-0-" in result.stdout
        assert "PoweringOnFailed" in result.stdout

    def test_groups_equal_machines(self, tanzu, seed_cluster):
        seed_cluster()
        assert "2 Machines..." in tanzu("cluster", "get", "gpu-test").stdout
        assert "2 Machines..." not in tanzu("cluster", "get", "gpu-test", "--show-group-members").stdout

    def test_missing_cluster(self, tanzu):
        result = tanzu("cluster", "get", "nope")
        assert result.returncode == 1
        assert "not found" in result.stderr


class TestDelete:
    def test_prompt_aborts_without_stdin(self, tanzu, seed_cluster):
        seed_cluster()
        result = tanzu("cluster", "delete", "gpu-test")
        assert result.returncode == 1
        assert result.stderr.rstrip().endswith("Error: aborted")
        assert json.loads(tanzu("cluster", "list", "-o", "json").stdout)[0]["status"] == "running"

    def test_prompt_accepts_yes(self, tanzu, seed_cluster):
        seed_cluster(with_vms=False)
        assert tanzu("cluster", "delete", "gpu-test", stdin="y\n").returncode == 0

    def test_asynchronous_deletion(self, tanzu, seed_cluster):
        seed_cluster(with_vms=False)
        delay = {"TANZU_DOUBLE_DELETE_DELAY_SECONDS": "1"}
        result = tanzu("cluster", "delete", "gpu-test", "-y", env=delay)
        assert result.returncode == 0
        assert "being deleted" in result.stderr
        assert json.loads(tanzu("cluster", "list", "-o", "json", env=delay).stdout)[0]["status"] == "deleting"
        time.sleep(1.2)
        assert tanzu("cluster", "list", "-o", "json", env=delay).stdout == "[]"

    def test_deletion_waits_for_credentials(self, tanzu, seed_cluster):
        seed_cluster(with_vms=True)
        delay = {"TANZU_DOUBLE_DELETE_DELAY_SECONDS": "0"}
        assert tanzu("cluster", "delete", "gpu-test", "-y", env=delay).returncode == 0
        result = tanzu("cluster", "list", "-o", "json", env=delay)
        assert json.loads(result.stdout)[0]["status"] == "deleting"
        assert "TANZU_DOUBLE_VSPHERE_USERNAME" in result.stderr

    def test_missing_cluster(self, tanzu):
        result = tanzu("cluster", "delete", "nope", "-y")
        assert result.returncode == 1
        assert "not found" in result.stderr

    def test_recreate_after_deletion(self, tanzu, seed_cluster, write_config):
        seed_cluster(with_vms=False)
        delay = {"TANZU_DOUBLE_DELETE_DELAY_SECONDS": "0"}
        tanzu("cluster", "delete", "gpu-test", "-y", env=delay)
        server = _ClosingServer()
        try:
            path = write_config({"VSPHERE_SERVER": f"127.0.0.1:{server.port}"})
            result = tanzu("cluster", "create", "-f", str(path), env=delay)
        finally:
            server.close()
        assert "already exists" not in result.stderr
        assert "cannot connect to vCenter" in result.stderr


class TestKubeconfig:
    def test_admin_context_written_0600(self, tanzu, seed_cluster, tmp_path):
        seed_cluster()
        path = tmp_path / "kube" / "config"
        result = tanzu("cluster", "kubeconfig", "get", "gpu-test", "--admin", "--export-file", str(path))
        assert result.returncode == 0, result.stderr
        assert "gpu-test-admin@gpu-test" in result.stderr
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        config = yaml.safe_load(path.read_text())
        assert config["current-context"] == "gpu-test-admin@gpu-test"
        assert config["clusters"][0]["cluster"]["server"] == "https://127.0.0.1:6443"

    def test_merge_keeps_current_context(self, tanzu, seed_cluster, tmp_path):
        seed_cluster()
        path = tmp_path / "config"
        existing = {
            "apiVersion": "v1",
            "kind": "Config",
            "current-context": "mgmt",
            "contexts": [{"name": "mgmt", "context": {"cluster": "mgmt", "user": "mgmt"}}],
            "clusters": [{"name": "mgmt", "cluster": {"server": "https://127.0.0.1:7443"}}],
            "users": [{"name": "mgmt", "user": {"token": "t"}}],
        }
        path.write_text(yaml.safe_dump(existing))
        os.chmod(path, 0o644)
        assert tanzu("cluster", "kubeconfig", "get", "gpu-test", "--admin", "--export-file", str(path)).returncode == 0
        merged = yaml.safe_load(path.read_text())
        assert merged["current-context"] == "mgmt"
        assert {item["name"] for item in merged["contexts"]} == {"mgmt", "gpu-test-admin@gpu-test"}
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

    def test_credentials_from_source_kubeconfig(self, tanzu, seed_cluster, tmp_path):
        seed_cluster()
        source = tmp_path / "workload.kubeconfig"
        source.write_text(
            yaml.safe_dump(
                {
                    "current-context": "w",
                    "contexts": [{"name": "w", "context": {"cluster": "w", "user": "w"}}],
                    "clusters": [{"name": "w", "cluster": {"server": "https://127.0.0.1:1", "certificate-authority": "ca.crt"}}],
                    "users": [{"name": "w", "user": {"client-certificate": "admin.crt", "client-key": "admin.key"}}],
                }
            )
        )
        path = tmp_path / "out"
        env = {"TANZU_DOUBLE_WORKLOAD_KUBECONFIG": str(source)}
        assert tanzu("cluster", "kubeconfig", "get", "gpu-test", "--admin", "--export-file", str(path), env=env).returncode == 0
        config = yaml.safe_load(path.read_text())
        cluster = config["clusters"][0]["cluster"]
        assert cluster["server"] == "https://127.0.0.1:6443"
        assert cluster["certificate-authority"] == str(tmp_path / "ca.crt")
        assert config["users"][0]["user"]["client-key"] == str(tmp_path / "admin.key")

    def test_requires_admin(self, tanzu, seed_cluster, tmp_path):
        seed_cluster()
        result = tanzu("cluster", "kubeconfig", "get", "gpu-test", "--export-file", str(tmp_path / "c"))
        assert result.returncode == 1
        assert "--admin" in result.stderr


def write_pool(tmp_path, text: str, name: str = "pool.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


class TestNodePools:
    def node_pools(self, tanzu) -> dict[str, dict]:
        result = tanzu("cluster", "node-pool", "list", "gpu-test", "-o", "json")
        assert result.returncode == 0, result.stderr
        return {item["metadata"]["name"]: item for item in json.loads(result.stdout)}

    def test_list_machine_deployments(self, tanzu, seed_cluster):
        seed_cluster(worker_phases=("Running", "Failed"))
        pools = self.node_pools(tanzu)
        md = pools["md-0"]
        assert (md["kind"], md["apiVersion"]) == ("MachineDeployment", "cluster.x-k8s.io/v1beta1")
        assert md["spec"]["replicas"] == 2
        assert (md["status"]["readyReplicas"], md["status"]["unavailableReplicas"]) == (1, 1)
        assert md["spec"]["strategy"]["type"] == "RollingUpdate"
        table = tanzu("cluster", "node-pool", "list", "gpu-test").stdout.splitlines()
        assert table[0].split() == ["NAME", "NAMESPACE", "PHASE", "REPLICAS", "READY", "UPDATED", "UNAVAILABLE"]

    def test_gpu_keys_silently_dropped(self, tanzu, seed_cluster, tmp_path, state_dir):
        seed_cluster()
        pool = write_pool(
            tmp_path,
            "name: gpu-b\nreplicas: 3\npciDevices: '0x10DE:0x20B5'\nhardwareVersion: vmx-19\n"
            "customVMXKeys: {a: b}\nvsphere: {memoryMiB: 65536, numCPUs: 16}\n",
        )
        result = tanzu("cluster", "node-pool", "set", "gpu-test", "-f", pool, "--base-machine-deployment", "md-0")
        assert result.returncode == 0, result.stderr
        assert "gpu-b" in result.stderr
        assert self.node_pools(tanzu)["gpu-b"]["spec"]["replicas"] == 3
        record = json.loads((state_dir / "clusters" / "default" / "gpu-test.json").read_text())
        [gpu_pool] = [md for md in record["topology"]["workers"]["machineDeployments"] if md["name"] == "gpu-b"]
        overrides = {item["name"]: item["value"] for item in gpu_pool["variables"]["overrides"]}
        assert "pci" not in overrides
        assert overrides["worker"]["machine"]["memoryMiB"] == 65536
        # The cluster-wide custom VMX keys travel into the new pool's worker override.
        assert overrides["worker"]["machine"]["customVMXKeys"]["pciPassthru.64bitMMIOSizeGB"] == "256"
        assert "a" not in overrides["worker"]["machine"]["customVMXKeys"]
        [info] = json.loads(tanzu("cluster", "list", "-o", "json").stdout)
        assert info["workers"] == "5/5"

    def test_new_pool_needs_class_and_resolver(self, tanzu, seed_cluster, tmp_path):
        seed_cluster()
        result = tanzu("cluster", "node-pool", "set", "gpu-test", "-f", write_pool(tmp_path, "name: extra\n"))
        assert result.returncode == 1
        assert "workerClass" in result.stderr
        pool = write_pool(tmp_path, "name: extra\nworkerClass: tkg-worker\ntkrResolver: os-name=ubuntu\n", "b.yaml")
        assert tanzu("cluster", "node-pool", "set", "gpu-test", "-f", pool).returncode == 0
        assert self.node_pools(tanzu)["extra"]["spec"]["replicas"] == 1

    def test_base_with_existing_pool_rejected(self, tanzu, seed_cluster, tmp_path):
        seed_cluster()
        pool = write_pool(tmp_path, "name: md-0\nreplicas: 1\n")
        result = tanzu("cluster", "node-pool", "set", "gpu-test", "-f", pool, "--base-machine-deployment", "md-0")
        assert result.returncode == 1
        assert "--base-machine-deployment" in result.stderr

    def test_type_error_in_file(self, tanzu, seed_cluster, tmp_path):
        seed_cluster()
        result = tanzu("cluster", "node-pool", "set", "gpu-test", "-f", write_pool(tmp_path, "name: x\nreplicas: many\n"))
        assert result.returncode == 1
        assert "Could not parse file contents" in result.stderr

    def test_delete_pool_by_name_flag(self, tanzu, seed_cluster, tmp_path):
        seed_cluster()
        pool = write_pool(tmp_path, "name: gpu-b\n")
        tanzu("cluster", "node-pool", "set", "gpu-test", "-f", pool, "--base-machine-deployment", "md-0")
        result = tanzu("cluster", "node-pool", "delete", "gpu-test", "-n", "gpu-b")
        assert result.returncode == 0
        assert "being deleted" in result.stderr
        assert list(self.node_pools(tanzu)) == ["md-0"]

    def test_delete_last_pool_rejected(self, tanzu, seed_cluster):
        seed_cluster()
        result = tanzu("cluster", "node-pool", "delete", "gpu-test", "--name", "md-0")
        assert result.returncode == 1
        assert "at least one node pool" in result.stderr

    def test_concurrent_updates_keep_every_pool(self, tanzu, seed_cluster, tmp_path):
        seed_cluster()
        files = [write_pool(tmp_path, f"name: pool-{index}\n", f"p{index}.yaml") for index in range(8)]

        def add(path: str) -> int:
            return tanzu("cluster", "node-pool", "set", "gpu-test", "-f", path, "--base-machine-deployment", "md-0").returncode

        with ThreadPoolExecutor(max_workers=8) as pool:
            assert list(pool.map(add, files)) == [0] * 8
        assert set(self.node_pools(tanzu)) == {"md-0"} | {f"pool-{index}" for index in range(8)}
