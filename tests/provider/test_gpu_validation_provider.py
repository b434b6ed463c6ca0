"""The CUDA validation provider's create and read against a lab control plane, without the Pulumi engine.

kwok plays the kubelet: a Pod labelled ``app.kubernetes.io/name=cuda-vector-add`` on a fake node finishes
at once, passing with the real sample's log, or failing with exit code 1 while the lab's cuda-fail switch
is on. Node allocatable values are whatever the test writes into the node status.
"""

from __future__ import annotations

import base64
import itertools
import tempfile
import time

import dill
import kubernetes.client
import pytest
import yaml

from components import gpu_validation
from components.gpu_validation import CudaValidationProvider, GpuValidationError
from lab.kube import FAKE_NODE_ANNOTATION, free_port
from tests import labtools

GPU_NODE = "gpu-wc-01-md-0-a"
CPU_NODE = "gpu-wc-01-md-1-a"
_namespace_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def plane(tmp_path_factory):
    with labtools.control_plane("workload", tmp_path_factory.mktemp("workload")) as started:
        with started.api_client() as client:
            core = kubernetes.client.CoreV1Api(client)
            create_node(core, GPU_NODE, gpus=1)
            create_node(core, CPU_NODE, gpus=None)
        yield started


@pytest.fixture
def core(plane):
    with plane.api_client() as client:
        yield kubernetes.client.CoreV1Api(client)


@pytest.fixture(autouse=True)
def fast_polling(monkeypatch):
    monkeypatch.setattr(gpu_validation, "POLL_INTERVAL_SECONDS", 0.3)


@pytest.fixture
def cuda_fail(plane):
    """Turn the lab's cuda-fail switch on for one test."""
    plane.set_cuda_fail(True)
    yield
    plane.set_cuda_fail(False)


def create_node(core, name: str, gpus: int | None) -> None:
    resources = {"cpu": "8", "memory": "64Gi", "pods": "110"}
    if gpus is not None:
        resources["nvidia.com/gpu"] = str(gpus)

    core.create_node(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "annotations": {FAKE_NODE_ANNOTATION: "fake"}},
            "status": {"capacity": resources, "allocatable": dict(resources)},
        }
    )


def set_node_gpus(core, name: str, gpus: int) -> None:
    """Change the node's advertised GPUs, as the device plugin would."""
    patch = {"status": {"capacity": {"nvidia.com/gpu": str(gpus)}, "allocatable": {"nvidia.com/gpu": str(gpus)}}}
    core.patch_node_status(name, patch)


def create_pod(core, *, name: str = "cuda-vector-add", gpus: int = 1, label: str = "cuda-vector-add") -> tuple[str, str]:
    """Create a namespace and a Pod shaped like the component's; return the namespace and the Pod's UID."""
    namespace = f"validation-{next(_namespace_numbers)}"
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    pod = core.create_namespaced_pod(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "labels": {"app.kubernetes.io/name": label, "app.kubernetes.io/part-of": "tkg-gpu-validation"},
            },
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "cuda-vector-add",
                        "image": "registry.k8s.io/cuda-vector-add:v0.1",
                        "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                    }
                ],
                "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            },
        },
    )

    return namespace, pod.metadata.uid


def props(plane, namespace: str, uid: str, *, expected: int = 1, timeout: float = 60) -> dict:
    return {
        "namespace": namespace,
        "pod_name": "cuda-vector-add",
        "pod_uid": uid,
        "expected_gpus": expected,
        "timeout_seconds": timeout,
        "kubeconfig": plane.kubeconfig_path.read_text(),
        "provider_version": gpu_validation.PROVIDER_VERSION,
    }


def client_key(plane) -> str:
    """Return the admin client key as it appears in the kubeconfig (base64), to check messages for it."""
    user = yaml.safe_load(plane.kubeconfig_path.read_text())["users"][0]["user"]
    return user["client-key-data"]


def test_provider_pickles_without_state():
    """The provider object carries no client or kubeconfig, so dill can store it in the state."""
    provider = CudaValidationProvider()
    restored = dill.loads(dill.dumps(provider, recurse=True))
    assert isinstance(restored, CudaValidationProvider)
    assert vars(provider) == {}


def test_create_passes(plane, core):
    namespace, uid = create_pod(core)

    created = CudaValidationProvider().create(props(plane, namespace, uid))

    assert created.id == f"{namespace}/cuda-vector-add"
    assert created.outs["result"] == "Test PASSED"
    assert created.outs["node"] == GPU_NODE
    assert created.outs["allocatable_gpus"] == 1
    assert created.outs["log_tail"].splitlines()[-2:] == ["Test PASSED", "Done"]
    assert created.outs["pod_uid"] == uid


def test_create_leaves_no_key_file(plane, core, monkeypatch, tmp_path):
    """The client library's certificate and key files are gone before create returns."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    namespace, uid = create_pod(core)

    CudaValidationProvider().create(props(plane, namespace, uid))

    assert list(tmp_path.iterdir()) == []


def test_read_sees_passed_pod(plane, core):
    namespace, uid = create_pod(core)
    provider = CudaValidationProvider()
    created = provider.create(props(plane, namespace, uid))

    read = provider.read(created.id, created.outs)

    assert read.id == created.id
    assert read.outs["result"] == "Test PASSED"
    assert read.outs["node"] == GPU_NODE
    assert "result" not in read.inputs
    assert read.inputs["pod_uid"] == uid


def test_read_reports_log_change(plane, core):
    """kwok serves one log file for every Pod, so the switch also changes the log of a Pod that passed."""
    namespace, uid = create_pod(core)
    provider = CudaValidationProvider()
    created = provider.create(props(plane, namespace, uid))

    plane.set_cuda_fail(True)
    try:
        read = provider.read(created.id, created.outs)
    finally:
        plane.set_cuda_fail(False)

    assert read.id == created.id
    assert read.outs["result"].startswith("CUDA validation failed")
    assert "Failed to allocate device vector A" in read.outs["result"]
    diff = provider.diff(created.id, read.outs, props(plane, namespace, uid))
    assert diff.replaces == ["result"]


def test_read_reports_allocatable_change(plane, core):
    namespace, uid = create_pod(core)
    provider = CudaValidationProvider()
    created = provider.create(props(plane, namespace, uid))

    set_node_gpus(core, GPU_NODE, 0)
    try:
        read = provider.read(created.id, created.outs)
    finally:
        set_node_gpus(core, GPU_NODE, 1)

    assert read.outs["allocatable_gpus"] == 0
    assert f"{GPU_NODE}=0" in read.outs["result"]
    assert f"{CPU_NODE}=not advertised" in read.outs["result"]


def test_read_marks_deleted_pod_gone(plane, core):
    namespace, uid = create_pod(core)
    provider = CudaValidationProvider()
    created = provider.create(props(plane, namespace, uid))

    core.delete_namespaced_pod("cuda-vector-add", namespace, grace_period_seconds=0)
    wait_pod_gone(core, namespace)
    read = provider.read(created.id, created.outs)

    assert read.id == ""
    assert read.outs == {}


def test_read_marks_recreated_pod_gone(plane, core):
    namespace, uid = create_pod(core)
    provider = CudaValidationProvider()
    created = provider.create(props(plane, namespace, uid))

    core.delete_namespaced_pod("cuda-vector-add", namespace, grace_period_seconds=0)
    wait_pod_gone(core, namespace)
    core.create_namespaced_pod(namespace, recreated_pod_body())
    read = provider.read(created.id, created.outs)

    assert read.id == ""


def test_create_fails_on_failed_log(plane, core, cuda_fail):
    namespace, uid = create_pod(core)

    with pytest.raises(GpuValidationError) as caught:
        CudaValidationProvider().create(props(plane, namespace, uid))

    message = str(caught.value)
    assert f"Pod {namespace}/cuda-vector-add ended in phase Failed with exit code 1" in message
    assert "does not show Test PASSED" in message
    assert "Failed to allocate device vector A (error code no CUDA-capable device is detected)!" in message
    assert "run pulumi up --replace with the Pod's URN" in message
    assert client_key(plane) not in message


def test_create_times_out_unschedulable(plane, core):
    """With the only GPU gone, the scheduler's reason and the allocatable listing are both reported."""
    set_node_gpus(core, GPU_NODE, 0)
    try:
        namespace, uid = create_pod(core)
        with pytest.raises(GpuValidationError) as caught:
            CudaValidationProvider().create(props(plane, namespace, uid, timeout=5))
    finally:
        set_node_gpus(core, GPU_NODE, 1)

    message = str(caught.value)
    assert "expected 1 nvidia.com/gpu allocatable in total" in message
    assert f"{GPU_NODE}=0, {CPU_NODE}=not advertised" in message
    assert f"Pod {namespace}/cuda-vector-add did not finish within 5s." in message
    assert "It is in phase Pending: not scheduled: 0/2 nodes are available" in message
    assert "Insufficient nvidia.com/gpu" in message


def test_create_times_out_gpu_in_use(plane, core):
    """Another Pod uses the only GPU: the counts match, and the scheduler's reason is the whole report."""
    blocker_namespace, _uid = create_pod(core, name="gpu-holder", label="gpu-holder")
    try:
        namespace, uid = create_pod(core)
        with pytest.raises(GpuValidationError) as caught:
            CudaValidationProvider().create(props(plane, namespace, uid, timeout=4))
    finally:
        core.delete_namespace(blocker_namespace)
        core.delete_namespaced_pod("gpu-holder", blocker_namespace, grace_period_seconds=0)

    message = str(caught.value)
    assert "allocatable in total" not in message
    assert "Insufficient nvidia.com/gpu" in message


def test_create_fails_on_allocatable_mismatch(plane, core):
    namespace, uid = create_pod(core)

    with pytest.raises(GpuValidationError) as caught:
        CudaValidationProvider().create(props(plane, namespace, uid, expected=2, timeout=3))

    message = str(caught.value)
    assert "expected 2 nvidia.com/gpu allocatable in total on the workload cluster's nodes, found 1" in message
    assert f"{GPU_NODE}=1, {CPU_NODE}=not advertised" in message
    assert "CUDA validation failed" not in message, "the Pod itself passed"
    assert "pulumi up --replace" not in message


def test_create_fails_on_missing_pod(plane, core):
    namespace, uid = create_pod(core)

    with pytest.raises(GpuValidationError) as caught:
        CudaValidationProvider().create({**props(plane, namespace, uid), "pod_name": "no-such-pod"})

    assert f"Pod {namespace}/no-such-pod not found" in str(caught.value)


def test_unreachable_server_reported_without_secrets(plane):
    """An API server that refuses connections is named in the error; the kubeconfig's key is not."""
    config = yaml.safe_load(plane.kubeconfig_path.read_text())
    config["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{closed_port()}"

    with pytest.raises(GpuValidationError) as caught:
        CudaValidationProvider().create(
            {**props(plane, "default", "uid"), "kubeconfig": yaml.safe_dump(config), "timeout_seconds": 1}
        )

    message = str(caught.value)
    assert "Kubernetes API request list nodes to https://127.0.0.1:" in message
    assert client_key(plane) not in message
    assert base64.b64decode(client_key(plane)).decode() not in message


def closed_port() -> int:
    """Return a port on 127.0.0.1 that nothing listens on at the moment."""
    return free_port()


def recreated_pod_body() -> dict:
    """Return a Pod with the validation Pod's name, as someone recreating it by hand would."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "cuda-vector-add", "labels": {"app.kubernetes.io/name": "cuda-vector-add"}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "cuda-vector-add", "image": "registry.k8s.io/cuda-vector-add:v0.1"}]},
    }


def wait_pod_gone(core, namespace: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            core.read_namespaced_pod("cuda-vector-add", namespace)
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return
            raise
        time.sleep(0.2)

    pytest.fail(f"Pod {namespace}/cuda-vector-add still exists {timeout} s after deletion")

