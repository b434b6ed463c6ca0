"""The GPU Operator, the CUDA validation and the edge tuning through the real engine against the lab's control planes.

One management stack and one site stack live for the whole module, so the tests run in file order. They cover up,
a second up with no changes, drift of the release and the controller flag, the validation's failure modes and destroy.
"""

from __future__ import annotations

import base64
import gzip
import json

import kubernetes
import pytest
import yaml

from lab.lab import wait_for
from lab.stack import Stack
from tests.engine.conftest import lab_stack, site_config, write_config

CLUSTER = "gpu-sw"
MANAGEMENT_STACK = "mgmt-sw"
SITE_STACK = "site-sw"
CONTROLLER = ("capi-system", "capi-kubeadm-control-plane-controller-manager")
DIAL_FLAG = "--etcd-dial-timeout-duration"
RELEASE = "gpu-operator"
OPERATOR_NAMESPACE = "gpu-operator"
VALIDATION_NAMESPACE = "tkg-gpu-validation"
POD_URN_SUFFIX = f"{CLUSTER}-gpu-validation-cuda-vector-add"
UP = ("up", "--yes", "--skip-preview", "--policy-pack", "policies")


@pytest.fixture(scope="module")
def stacks(project, lab, password, tmp_path_factory):
    """The management stack and the site stack that reads it, both up; destroyed by the last test."""
    logs = tmp_path_factory.mktemp("gpu-software")
    management = lab_stack(project, lab, logs, MANAGEMENT_STACK)
    write_config(management, {
        "role": "management",
        "site": {"name": "lab", "kind": "edge"},
        "management": {"kubeconfig": str(lab.management.kubeconfig_path), "etcdDialTimeout": "40s"},
    })
    site = lab_stack(project, lab, logs, SITE_STACK)
    write_config(site, site_config(
        lab,
        cluster={"name": CLUSTER, "workerCount": 2},
        managementStack=f"organization/tkg-gpu/{MANAGEMENT_STACK}",
    ))
    site.set_secret("tkg-gpu:vcenterPassword", password)

    yield management, site, logs

    for stack in (site, management):
        stack.run("destroy", "--yes", "--skip-preview", check=False)
        stack.remove()


def _core(plane) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(plane.api_client())


def _apps(plane) -> kubernetes.client.AppsV1Api:
    return kubernetes.client.AppsV1Api(plane.api_client())


def _controller_args(lab) -> list[str]:
    deployment = _apps(lab.management).read_namespaced_deployment(CONTROLLER[1], CONTROLLER[0])
    container = next(item for item in deployment.spec.template.spec.containers if item.name == "manager")
    return list(container.args or [])


def _release_secrets(lab) -> list[kubernetes.client.V1Secret]:
    secrets = _core(lab.workload).list_namespaced_secret(OPERATOR_NAMESPACE, label_selector=f"owner=helm,name={RELEASE}")
    return sorted(secrets.items, key=lambda item: int(item.metadata.labels["version"]))


def _decode_release(secret: kubernetes.client.V1Secret) -> dict:
    # Helm stores a release as base64(gzip(JSON)), and the Secret API adds another base64 layer.
    return json.loads(gzip.decompress(base64.b64decode(base64.b64decode(secret.data["release"]))))


def _encode_release(release: dict) -> str:
    return base64.b64encode(base64.b64encode(gzip.compress(json.dumps(release).encode()))).decode()


def _preview_changes(stack: Stack) -> str:
    return stack.run("refresh", "--preview-only", "--diff").stdout


def test_up_deploys_operator_validation_and_edge_timeout(stacks, lab):
    management, site, _logs = stacks
    management.run(*UP)
    site.run(*UP)

    outputs = site.outputs()
    assert outputs["gpuValidation"] == "Test PASSED"
    assert outputs["gpuOperator"]["status"] == "deployed"
    assert outputs["gpuOperator"]["release"] == RELEASE
    assert f"{DIAL_FLAG}=40s" in _controller_args(lab)

    pods = _core(lab.workload).list_namespaced_pod(OPERATOR_NAMESPACE).items
    assert pods, "the operator release created no Pods"
    assert all(pod.status.phase == "Running" for pod in pods), [(pod.metadata.name, pod.status.phase) for pod in pods]
    nodes = {node.metadata.name: node for node in _core(lab.workload).list_node().items}
    assert all(nodes[pod.spec.node_name].metadata.annotations.get("kwok.x-k8s.io/node") == "fake" for pod in pods)


def test_second_up_reports_no_changes(stacks):
    management, site, _logs = stacks
    for stack in (management, site):
        result = stack.run(*UP, "--expect-no-changes", check=False)
        assert result.returncode == 0, result.stdout + result.stderr


def test_reverted_controller_flag_is_found_and_restored(stacks, lab):
    management, _site, _logs = stacks
    args = [arg for arg in _controller_args(lab) if not arg.startswith(DIAL_FLAG)]
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "manager", "args": args}]}}}}
    _apps(lab.management).patch_namespaced_deployment(CONTROLLER[1], CONTROLLER[0], patch, field_manager="kubectl-edit")
    assert f"{DIAL_FLAG}=40s" not in _controller_args(lab)

    assert DIAL_FLAG in _preview_changes(management)
    management.run("refresh", "--yes", "--skip-preview")
    management.run(*UP)
    assert f"{DIAL_FLAG}=40s" in _controller_args(lab)


def test_hand_changed_release_value_is_found_and_restored(stacks, lab):
    """`helm upgrade --reuse-values --set driver.version=...` by hand: a new release revision with other values."""
    _management, site, _logs = stacks
    latest = _release_secrets(lab)[-1]
    release = _decode_release(latest)
    expected = release["config"]["driver"]["version"]
    release["config"]["driver"]["version"] = "550.144.03"
    release["version"] += 1
    release["info"]["status"] = "deployed"
    core = _core(lab.workload)
    core.patch_namespaced_secret(latest.metadata.name, OPERATOR_NAMESPACE, {"metadata": {"labels": {"status": "superseded"}}})
    core.create_namespaced_secret(OPERATOR_NAMESPACE, kubernetes.client.V1Secret(
        metadata=kubernetes.client.V1ObjectMeta(
            name=f"sh.helm.release.v1.{RELEASE}.v{release['version']}",
            labels={"owner": "helm", "name": RELEASE, "status": "deployed", "version": str(release["version"])},
        ),
        type="helm.sh/release.v1",
        data={"release": _encode_release(release)},
    ))

    changes = _preview_changes(site)
    assert "550.144.03" in changes, changes
    site.run("refresh", "--yes", "--skip-preview")
    site.run(*UP)
    assert _decode_release(_release_secrets(lab)[-1])["config"]["driver"]["version"] == expected


def test_deleted_release_is_found_and_reinstalled(stacks, lab):
    """`helm uninstall` by hand: the release records and the chart's objects are gone."""
    _management, site, _logs = stacks
    core, apps = _core(lab.workload), _apps(lab.workload)
    for secret in _release_secrets(lab):
        core.delete_namespaced_secret(secret.metadata.name, OPERATOR_NAMESPACE)
    for deployment in apps.list_namespaced_deployment(OPERATOR_NAMESPACE).items:
        apps.delete_namespaced_deployment(deployment.metadata.name, OPERATOR_NAMESPACE)
    for daemon_set in apps.list_namespaced_daemon_set(OPERATOR_NAMESPACE).items:
        apps.delete_namespaced_daemon_set(daemon_set.metadata.name, OPERATOR_NAMESPACE)

    changes = _preview_changes(site)
    assert "kubernetes:helm.sh/v3:Release: (delete)" in changes, changes
    site.run("refresh", "--yes", "--skip-preview")
    site.run(*UP)
    assert site.outputs()["gpuOperator"]["status"] == "deployed"
    assert _release_secrets(lab), "the release was not installed again"


def _pod_urn(site: Stack) -> str:
    resources = json.loads(site.export())["deployment"]["resources"]
    return next(item["urn"] for item in resources if item["urn"].endswith(f"::{POD_URN_SUFFIX}"))


def test_cuda_failure_fails_up(stacks, lab):
    _management, site, _logs = stacks
    lab.set_switch("cuda-fail", True)
    try:
        result = site.run(*UP, "--replace", _pod_urn(site), check=False)
    finally:
        lab.set_switch("cuda-fail", False)

    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "cuda-vector-add" in output
    assert "Failed to allocate device vector A" in output
    assert "exit code 1" in output

    site.run(*UP, "--replace", _pod_urn(site))
    assert site.outputs()["gpuValidation"] == "Test PASSED"


def test_worker_without_gpu_fails_with_scheduling_reason(stacks, lab):
    """Both workers stop advertising their GPU (as with a VM that lost its passthrough device)."""
    _management, site, _logs = stacks
    core = _core(lab.workload)
    workers = [node for node in core.list_node().items if "nvidia.com/gpu" in (node.status.allocatable or {})]
    assert len(workers) == 2
    for node in workers:
        core.patch_node_status(node.metadata.name, {"status": {"capacity": {"nvidia.com/gpu": "0"}, "allocatable": {"nvidia.com/gpu": "0"}}})

    site.run("config", "set", "--path", "tkg-gpu:validation.timeout", "20s")
    try:
        result = site.run(*UP, "--replace", _pod_urn(site), check=False, timeout=300)
    finally:
        site.run("config", "set", "--path", "tkg-gpu:validation.timeout", "2m")
        for node in workers:
            core.patch_node_status(node.metadata.name, {"status": {"capacity": {"nvidia.com/gpu": "1"}, "allocatable": {"nvidia.com/gpu": "1"}}})

    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "cuda-vector-add" in output
    assert "Insufficient nvidia.com/gpu" in output

    site.run(*UP, "--replace", _pod_urn(site))
    assert site.outputs()["gpuValidation"] == "Test PASSED"


def test_destroy_removes_software_before_cluster_and_leaves_nothing(stacks, lab):
    management, site, logs = stacks
    state = site.export() + management.export()
    kubeconfig_key = yaml.safe_load(lab.workload.kubeconfig_path.read_text())["users"][0]["user"]["client-key-data"]
    assert kubeconfig_key not in state, "the workload kubeconfig's key is in the state"

    destroy = site.run("destroy", "--yes", "--skip-preview").stdout
    order = [line for line in destroy.splitlines() if "deleted" in line]
    position = {kind: next(i for i, line in enumerate(order) if kind in line) for kind in (
        "tkggpu:CudaValidation", "kubernetes:core/v1:Pod", "kubernetes:helm.sh/v3:Release", "tkggpu:TanzuCluster")}
    assert position["tkggpu:CudaValidation"] < position["tkggpu:TanzuCluster"]
    assert position["kubernetes:core/v1:Pod"] < position["tkggpu:TanzuCluster"]
    assert position["kubernetes:helm.sh/v3:Release"] < position["tkggpu:TanzuCluster"]
    namespace_lines = [i for i, line in enumerate(order) if "kubernetes:core/v1:Namespace" in line]
    assert namespace_lines and max(namespace_lines) < position["tkggpu:TanzuCluster"]
    management.run("destroy", "--yes", "--skip-preview")

    core = _core(lab.workload)
    wait_for(
        lambda: not {OPERATOR_NAMESPACE, VALIDATION_NAMESPACE} & {item.metadata.name for item in core.list_namespace().items},
        timeout=120,
        message="the operator and validation namespaces to go",
    )
    assert not [node for node in core.list_node().items if node.metadata.name.startswith(CLUSTER)]
    custom = kubernetes.client.CustomObjectsApi(lab.management.api_client())
    for plural in ("clusters", "machinedeployments"):
        assert not custom.list_cluster_custom_object("cluster.x-k8s.io", "v1beta1", plural)["items"], plural
    secrets = _core(lab.management).list_secret_for_all_namespaces().items
    assert not [item for item in secrets if item.metadata.name.startswith(CLUSTER)]
