"""The lab's two Kubernetes control planes: readiness, Cluster API objects, kwok nodes and Pods, switches, stop.

One lab serves the whole module; the last test stops it, so the tests run in file order.
"""

from __future__ import annotations

import os
import pathlib
import ssl
import stat
import time
import urllib.request
import uuid

import kubernetes.client
import pytest
import yaml

from lab.kube import ControlPlane, is_running
from lab.lab import LabError, wait_for
from tests import labtools

CAPI_CRDS = (
    "clusters.cluster.x-k8s.io",
    "machinedeployments.cluster.x-k8s.io",
    "machinehealthchecks.cluster.x-k8s.io",
    "kubeadmcontrolplanes.controlplane.cluster.x-k8s.io",
)
CAPI_NAMESPACE = "capi-system"
CAPI_DEPLOYMENT = "capi-kubeadm-control-plane-controller-manager"
GPU_NODE = "workload-md-0-gpu-1"
CUDA_LABELS = {"app.kubernetes.io/name": "cuda-vector-add", "app.kubernetes.io/part-of": "tkg-gpu-validation"}
PASSED_LOG_END = "Test PASSED\nDone\n"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    for tool in ControlPlane.COMPONENTS:
        labtools.require_tool(tool)
    started = labtools.start_lab(tmp_path_factory.mktemp("kube-lab"), labtools.sentinel_password(), hosts=1)
    yield started
    started.stop()


@pytest.fixture(scope="module")
def workload_core(lab):
    with lab.workload.api_client() as client:
        yield kubernetes.client.CoreV1Api(client)


@pytest.fixture(scope="module")
def gpu_node(lab, workload_core):
    """A kwok node with two GPUs in capacity and allocatable, as the tanzu double creates GPU workers."""
    resources = {"cpu": "16", "memory": "64Gi", "pods": "110", "nvidia.com/gpu": "2"}
    workload_core.create_node(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": GPU_NODE,
                "annotations": {"kwok.x-k8s.io/node": "fake"},
                "labels": {"feature.node.kubernetes.io/pci-10de.present": "true"},
            },
            "status": {"capacity": resources, "allocatable": resources},
        }
    )
    wait_for(lambda: node_ready(workload_core.read_node(GPU_NODE)), timeout=30, message=f"node {GPU_NODE} to be Ready")
    return workload_core.read_node(GPU_NODE)


def node_ready(node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


def new_namespace(core) -> str:
    """Create a namespace and wait for its default ServiceAccount, which Pod admission requires."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})

    def has_service_account() -> bool:
        try:
            core.read_namespaced_service_account("default", name)
        except kubernetes.client.ApiException:
            return False
        return True

    wait_for(has_service_account, timeout=30, message=f"the default ServiceAccount in {name}")
    return name


def run_cuda_vector_add(core, namespace: str, name: str):
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": name, "labels": CUDA_LABELS},
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "cuda-vector-add",
                        "image": "registry.k8s.io/cuda-vector-add:v0.1",
                        "resources": {"limits": {"nvidia.com/gpu": "1"}},
                    }
                ],
            },
        },
    )
    wait_for(
        lambda: core.read_namespaced_pod(name, namespace).status.phase in ("Succeeded", "Failed"),
        timeout=30,
        message=f"Pod {namespace}/{name} to finish",
    )
    return core.read_namespaced_pod(name, namespace)


def get_readyz(plane: ControlPlane) -> str:
    context = ssl.create_default_context(cafile=str(plane.pki / "ca.crt"))
    context.load_cert_chain(str(plane.pki / "admin.crt"), str(plane.pki / "admin.key"))
    with urllib.request.urlopen(f"{plane.server}/readyz", context=context, timeout=10) as response:
        return response.read().decode()


def listening_sockets(pids: list[int]) -> dict[int, list[str]]:
    """Return the local addresses of the listening TCP and bound UDP sockets of each process, from /proc."""
    addresses_by_inode: dict[str, str] = {}
    for table, listening_state in (("tcp", "0A"), ("tcp6", "0A"), ("udp", "07"), ("udp6", "07")):
        lines = pathlib.Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            if fields[3] == listening_state:
                addresses_by_inode[fields[9]] = f"{table} {decode_address(fields[1])}"

    sockets: dict[int, list[str]] = {}
    for pid in pids:
        sockets[pid] = []
        for descriptor in pathlib.Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(descriptor)
            except OSError:
                continue
            if target.startswith("socket:["):
                inode = target[len("socket:["):-1]
                if inode in addresses_by_inode:
                    sockets[pid].append(addresses_by_inode[inode])
    return sockets


def decode_address(hex_address: str) -> str:
    """Decode /proc/net's ``ADDRESS:PORT`` (address in host byte order, 32-bit words) to ``ip:port``."""
    address, port = hex_address.split(":")
    raw = bytes.fromhex(address)
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    if len(words) == 4:
        ip = ".".join(str(byte) for byte in words)
    else:
        import ipaddress

        ip = str(ipaddress.IPv6Address(words))
    return f"{ip}:{int(port, 16)}"


def test_both_planes_ready(lab):
    assert set(lab.planes) == {"management", "workload"}
    for plane in lab.planes.values():
        assert get_readyz(plane) == "ok"


def test_kubeconfig_self_contained(lab):
    for plane in lab.planes.values():
        assert stat.S_IMODE(plane.kubeconfig_path.stat().st_mode) == 0o600
        config = yaml.safe_load(plane.kubeconfig_path.read_text())
        cluster = config["clusters"][0]["cluster"]
        user = config["users"][0]["user"]
        assert cluster["server"] == plane.server
        assert plane.server.startswith("https://127.0.0.1:")
        assert "certificate-authority-data" in cluster
        assert set(user) == {"client-certificate-data", "client-key-data"}


def test_key_files_private(lab):
    for plane in lab.planes.values():
        assert stat.S_IMODE(plane.pki.stat().st_mode) == 0o700
        files = list(plane.pki.iterdir())
        assert {path.name for path in files} >= {"ca.crt", "ca.key", "apiserver.crt", "admin.key", "sa.key", "sa.pub"}
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_environment_points_at_planes(lab):
    environment = lab.environment()
    assert environment["TANZU_DOUBLE_MANAGEMENT_KUBECONFIG"] == str(lab.management.kubeconfig_path)
    assert environment["TKG_GPU_LAB_MANAGEMENT_KUBECONFIG"] == str(lab.management.kubeconfig_path)
    assert environment["TANZU_DOUBLE_WORKLOAD_KUBECONFIG"] == str(lab.workload.kubeconfig_path)
    assert environment["TANZU_DOUBLE_WORKLOAD_SERVER"] == lab.workload.server


def crd_names(plane: ControlPlane) -> set[str]:
    with plane.api_client() as client:
        crds = kubernetes.client.ApiextensionsV1Api(client).list_custom_resource_definition().items
    return {crd.metadata.name for crd in crds}


def test_management_serves_capi_kinds(lab):
    names = crd_names(lab.management)
    for name in CAPI_CRDS:
        assert name in names


def test_workload_has_no_capi_kinds(lab):
    assert not crd_names(lab.workload) & set(CAPI_CRDS)


def test_capi_controller_deployment_ready(lab):
    with lab.management.api_client() as client:
        apps = kubernetes.client.AppsV1Api(client)

        def ready() -> bool:
            return apps.read_namespaced_deployment(CAPI_DEPLOYMENT, CAPI_NAMESPACE).status.ready_replicas == 1

        wait_for(ready, timeout=30, message=f"Deployment {CAPI_NAMESPACE}/{CAPI_DEPLOYMENT} to be ready")
        deployment = apps.read_namespaced_deployment(CAPI_DEPLOYMENT, CAPI_NAMESPACE)

    arguments = deployment.spec.template.spec.containers[0].args
    assert "--leader-elect" in arguments
    assert "--metrics-bind-addr=localhost:8080" in arguments
    assert not any(argument.startswith("--etcd-dial-timeout-duration") for argument in arguments)
    assert "kapp" in {entry.manager for entry in deployment.metadata.managed_fields}
    assert "kapp.k14s.io/app" in deployment.metadata.labels


def test_gpu_node_keeps_creator_resources(gpu_node):
    assert gpu_node.status.capacity["nvidia.com/gpu"] == "2"
    assert gpu_node.status.allocatable["nvidia.com/gpu"] == "2"
    assert gpu_node.status.allocatable["cpu"] == "16"


def test_gpu_node_serves_logs_on_loopback(gpu_node):
    addresses = {(address.type, address.address) for address in gpu_node.status.addresses}
    assert ("InternalIP", "127.0.0.1") in addresses
    assert gpu_node.status.daemon_endpoints.kubelet_endpoint.port > 0


def test_cuda_vector_add_passes(gpu_node, workload_core):
    namespace = new_namespace(workload_core)
    pod = run_cuda_vector_add(workload_core, namespace, "cuda-vector-add")

    assert pod.spec.node_name == GPU_NODE
    assert pod.status.phase == "Succeeded"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 0
    log = workload_core.read_namespaced_pod_log("cuda-vector-add", namespace)
    assert log.startswith("[Vector addition of 50000 elements]\n")
    assert log.endswith(PASSED_LOG_END)


def test_cuda_fail_switch(lab, gpu_node, workload_core):
    namespace = new_namespace(workload_core)
    lab.set_switch("cuda-fail", True)
    try:
        pod = run_cuda_vector_add(workload_core, namespace, "cuda-vector-add-fails")
        log = workload_core.read_namespaced_pod_log("cuda-vector-add-fails", namespace)
    finally:
        lab.set_switch("cuda-fail", False)

    assert pod.status.phase == "Failed"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 1
    assert "Test PASSED" not in log
    assert "no CUDA-capable device is detected" in log

    pod = run_cuda_vector_add(workload_core, namespace, "cuda-vector-add-again")
    assert pod.status.phase == "Succeeded"
    assert workload_core.read_namespaced_pod_log("cuda-vector-add-again", namespace).endswith(PASSED_LOG_END)


def test_workers_without_gpu_switch(lab):
    switch_file = lab.tanzu_state_dir / "switches" / "workers-without-gpu"
    lab.set_switch("workers-without-gpu", True)
    assert switch_file.exists()

    lab.set_switch("workers-without-gpu", False)
    assert not switch_file.exists()


def test_unknown_switch_rejected(lab):
    with pytest.raises(LabError, match="unknown switch 'gpu-melt'"):
        lab.set_switch("gpu-melt", True)


def test_deployment_and_daemonset_ready(lab, gpu_node, workload_core):
    namespace = new_namespace(workload_core)
    labels = {"app": "fake-operator"}
    template = {
        "metadata": {"labels": labels},
        "spec": {
            "initContainers": [{"name": "init", "image": "example.invalid/init:1"}],
            "containers": [{"name": "main", "image": "example.invalid/main:1"}],
        },
    }
    with lab.workload.api_client() as client:
        apps = kubernetes.client.AppsV1Api(client)
        selector = {"matchLabels": labels}
        apps.create_namespaced_deployment(
            namespace,
            {"metadata": {"name": "operator"}, "spec": {"replicas": 2, "selector": selector, "template": template}},
        )
        apps.create_namespaced_daemon_set(
            namespace, {"metadata": {"name": "driver"}, "spec": {"selector": selector, "template": template}}
        )

        def ready() -> bool:
            deployment = apps.read_namespaced_deployment("operator", namespace).status
            daemon_set = apps.read_namespaced_daemon_set("driver", namespace).status
            daemon_set_ready = daemon_set.desired_number_scheduled == daemon_set.number_ready == 1
            return deployment.ready_replicas == 2 and daemon_set_ready

        wait_for(ready, timeout=30, message="the Deployment and the DaemonSet to be ready")

    pods = workload_core.list_namespaced_pod(namespace).items
    assert len(pods) == 3
    for pod in pods:
        assert pod.status.phase == "Running"
        assert pod.status.init_container_statuses[0].state.terminated.exit_code == 0


def test_namespace_deletion_finishes(lab, gpu_node):
    """Namespaces with running Pods go away on both planes: kwok removes the Pods that the controller deletes."""
    with lab.management.api_client() as management, lab.workload.api_client() as workload:
        cores = [kubernetes.client.CoreV1Api(management), kubernetes.client.CoreV1Api(workload)]
        namespaces = [new_namespace(core) for core in cores]
        for core, namespace in zip(cores, namespaces):
            for index in range(3):
                container = {"name": "main", "image": "example.invalid/main:1"}
                core.create_namespaced_pod(
                    namespace, {"metadata": {"name": f"pod-{index}"}, "spec": {"containers": [container]}}
                )
        for core, namespace in zip(cores, namespaces):
            wait_for(
                lambda core=core, namespace=namespace: all(
                    pod.status.phase == "Running" for pod in core.list_namespaced_pod(namespace).items
                ),
                timeout=30,
                message=f"the Pods in {namespace} to run",
            )

        started = time.monotonic()
        for core, namespace in zip(cores, namespaces):
            core.delete_namespace(namespace)

        def deleted(core, namespace) -> bool:
            try:
                core.read_namespace(namespace)
            except kubernetes.client.ApiException as error:
                return error.status == 404
            return False

        # Kubernetes' namespace controller waits 5 s (namespaceDeletionGracePeriod) before it deletes the content.
        for core, namespace in zip(cores, namespaces):
            wait_for(
                lambda core=core, namespace=namespace: deleted(core, namespace),
                timeout=30,
                message=f"namespace {namespace} to be deleted",
            )
        assert time.monotonic() - started < 30


def test_every_socket_on_loopback(lab):
    records = lab.records()
    sockets = listening_sockets([record.pid for record in records])
    for record in records:
        assert sockets[record.pid], f"{record.component} (pid {record.pid}) has no listening socket"
        for address in sockets[record.pid]:
            assert address.split()[1].startswith("127.0.0.1:"), f"{record.component} listens on {address}"


def test_stop_ends_every_process(lab):
    records = lab.records()
    assert len(records) == 11  # vcsim-gpu and five processes per plane

    lab.stop()

    for record in records:
        assert not is_running(record), f"{record.component} (pid {record.pid}) still runs"
    for plane_dir in (lab.state_dir / "kube").iterdir():
        assert not (plane_dir / "pki").exists()
        assert not (plane_dir / "admin.kubeconfig").exists()
        assert not (plane_dir / "etcd").exists()


def test_failed_component_stops_plane(tmp_path, monkeypatch):
    """A component that exits at start-up fails the start with its name and log, and nothing keeps running."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    apiserver = fake_bin / "kube-apiserver"
    apiserver.write_text("#!/bin/sh\necho 'simulated start-up failure' >&2\nexit 3\n")
    apiserver.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")

    plane = ControlPlane("broken", tmp_path / "broken")
    started_records = []
    original_spawn = plane._spawn

    def spawn_and_remember(component, arguments, environment=None):
        original_spawn(component, arguments, environment)
        started_records.append(plane.records[-1])

    monkeypatch.setattr(plane, "_spawn", spawn_and_remember)
    with pytest.raises(LabError) as raised:
        plane.start()

    message = str(raised.value)
    assert "kube-apiserver of the broken control plane exited with code 3" in message
    assert str(plane.log_path("kube-apiserver")) in message
    assert "simulated start-up failure" in plane.log_path("kube-apiserver").read_text()
    assert [record.component for record in started_records] == ["broken/etcd", "broken/kube-apiserver"]
    for record in started_records:
        assert not is_running(record), f"{record.component} (pid {record.pid}) still runs"
    assert not (tmp_path / "broken" / "pki").exists()
