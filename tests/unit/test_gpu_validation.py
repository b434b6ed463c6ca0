"""GpuValidation under Pulumi mocks, and the pure evaluation of Pods, nodes and logs it runs on the cluster."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s
import pytest
from babel.messages import mofile, pofile
from pulumi.runtime import rpc

from components import gpu_validation, i18n
from components.config import RegistrySettings, ValidationSettings
from components.gpu_validation import (
    GpuValidationError,
    allocatable_problem,
    finished_problem,
    gpu_allocatable,
    is_finished,
    log_tail,
    scheduling_message,
    unfinished_problem,
    validation_image,
    validation_problems,
)
from policies import rules

PASSED_LOG = (
    "[Vector addition of 50000 elements]\n"
    "Copy input data from the host memory to the CUDA device\n"
    "CUDA kernel launch with 196 blocks of 256 threads\n"
    "Copy output data from the CUDA device to the host memory\n"
    "Test PASSED\n"
    "Done\n"
)
FAILED_LOG = (
    "[Vector addition of 50000 elements]\n"
    "Failed to allocate device vector A (error code no CUDA-capable device is detected)!\n"
)
UNSCHEDULABLE = (
    "0/3 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }, "
    "2 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for "
    "scheduling, 2 No preemption victims found for incoming pod."
)
KUBECONFIG = "apiVersion: v1\nkind: Config\nusers:\n- name: admin\n  user:\n    client-key-data: c2VjcmV0LWtleQ==\n"


# ---------------------------------------------------------------------------------------------------------
# API objects as the API server returns them


def node(name: str, gpus: str | None) -> dict:
    allocatable = {"cpu": "8", "memory": "64Gi", "pods": "110"}
    if gpus is not None:
        allocatable["nvidia.com/gpu"] = gpus

    return {"metadata": {"name": name}, "status": {"allocatable": allocatable, "capacity": dict(allocatable)}}


def pod(phase: str, *, exit_code: int | None = None, waiting: tuple[str, str] | None = None, conditions=None) -> dict:
    state: dict = {}
    if exit_code is not None:
        state = {"terminated": {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error"}}
    elif waiting is not None:
        state = {"waiting": {"reason": waiting[0], "message": waiting[1]}}

    status: dict = {"phase": phase, "conditions": conditions or []}
    if state:
        status["containerStatuses"] = [{"name": "cuda-vector-add", "state": state}]

    return {
        "metadata": {"name": "cuda-vector-add", "namespace": "tkg-gpu-validation", "uid": "uid-1"},
        "spec": {"nodeName": "gpu-wc-01-md-0-a" if phase != "Pending" else None},
        "status": status,
    }


def unschedulable_pod() -> dict:
    condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": UNSCHEDULABLE}

    return pod("Pending", conditions=[condition])


CLUSTER_NODES = [node("gpu-wc-01-cp-x", None), node("gpu-wc-01-md-0-a", "1"), node("gpu-wc-01-md-0-b", "1")]


# ---------------------------------------------------------------------------------------------------------
# Image


def test_image_kept_without_registry():
    assert validation_image("registry.k8s.io/cuda-vector-add:v0.1", None) == "registry.k8s.io/cuda-vector-add:v0.1"


def test_image_moved_into_registry():
    registry = RegistrySettings(repository="harbor.example.com/tkg")
    assert validation_image("registry.k8s.io/cuda-vector-add:v0.1", registry) == "harbor.example.com/tkg/cuda-vector-add:v0.1"


def test_image_digest_kept_in_registry():
    registry = RegistrySettings(repository="harbor.example.com:8443/tkg")
    digest = "sha256:" + "a" * 64
    assert (
        validation_image(f"nvcr.io/nvidia/k8s/cuda-sample:vectoradd-cuda12.5.0@{digest}", registry)
        == f"harbor.example.com:8443/tkg/cuda-sample:vectoradd-cuda12.5.0@{digest}"
    )


def test_image_already_in_registry_kept():
    registry = RegistrySettings(repository="harbor.example.com/tkg")
    image = "harbor.example.com/tkg/samples/cuda-vector-add:v0.1"
    assert validation_image(image, registry) == image


# ---------------------------------------------------------------------------------------------------------
# Allocatable GPUs


def test_allocatable_counts_advertising_nodes():
    assert gpu_allocatable(CLUSTER_NODES) == {"gpu-wc-01-md-0-a": 1, "gpu-wc-01-md-0-b": 1}


def test_allocatable_matches_expected():
    assert allocatable_problem(CLUSTER_NODES, 2) is None


def test_allocatable_mismatch_lists_nodes():
    nodes = [node("gpu-wc-01-cp-x", None), node("gpu-wc-01-md-0-a", "1"), node("gpu-wc-01-md-0-b", "0")]

    problem = allocatable_problem(nodes, 2)

    assert problem is not None
    assert "expected 2 nvidia.com/gpu" in problem
    assert "found 1" in problem
    assert "gpu-wc-01-cp-x=not advertised, gpu-wc-01-md-0-a=1, gpu-wc-01-md-0-b=0" in problem
    assert "device plugin" in problem


def test_allocatable_more_than_expected_fails():
    problem = allocatable_problem(CLUSTER_NODES, 1)
    assert problem is not None
    assert "found 2" in problem


def test_allocatable_without_nodes():
    problem = allocatable_problem([], 2)
    assert problem is not None
    assert "per node: no nodes" in problem


# ---------------------------------------------------------------------------------------------------------
# Pod state and log


def test_scheduling_message_of_unschedulable_pod():
    assert scheduling_message(unschedulable_pod()) == UNSCHEDULABLE


def test_scheduling_message_ignores_scheduled_pod():
    scheduled = pod("Pending", conditions=[{"type": "PodScheduled", "status": "True"}])
    assert scheduling_message(scheduled) is None
    assert scheduling_message(pod("Running")) is None


@pytest.mark.parametrize(
    ("state", "finished"),
    [
        (pod("Succeeded", exit_code=0), True),
        (pod("Failed", exit_code=1), True),
        (pod("Pending", waiting=("ImagePullBackOff", "Back-off pulling image")), True),
        (pod("Pending", waiting=("ContainerCreating", "")), False),
        (pod("Running"), False),
        (unschedulable_pod(), False),
    ],
)
def test_is_finished(state, finished):
    assert is_finished(state) is finished


def test_log_tail_keeps_last_lines():
    log = "\n".join(f"line {number}" for number in range(1, 16)) + "\n\n"
    assert log_tail(log).splitlines() == [f"line {number}" for number in range(6, 16)]


def test_passed_pod_has_no_problem():
    assert finished_problem(pod("Succeeded", exit_code=0), PASSED_LOG) is None


def test_failed_pod_reports_exit_code_and_log():
    problem = finished_problem(pod("Failed", exit_code=1), FAILED_LOG)

    assert problem is not None
    assert "Pod tkg-gpu-validation/cuda-vector-add ended in phase Failed with exit code 1" in problem
    assert "does not show Test PASSED" in problem
    assert problem.endswith(
        "[Vector addition of 50000 elements]\n"
        "Failed to allocate device vector A (error code no CUDA-capable device is detected)!"
    )


def test_succeeded_pod_without_marker_fails():
    """Phase Succeeded alone is not enough; the log must contain Test PASSED."""
    problem = finished_problem(pod("Succeeded", exit_code=0), "Done\n")
    assert problem is not None
    assert "ended in phase Succeeded with exit code 0" in problem


def test_failed_pod_with_empty_log():
    problem = finished_problem(pod("Failed"), "")
    assert problem is not None
    assert "exit code unknown" in problem
    assert "(empty log)" in problem


def test_image_pull_failure_reported():
    stuck = pod("Pending", waiting=("ImagePullBackOff", 'Back-off pulling image "harbor.example.com/tkg/cuda-vector-add:v0.1"'))

    problem = finished_problem(stuck, "")

    assert problem is not None
    assert "cannot start: ImagePullBackOff: Back-off pulling image" in problem
    assert "tkg-gpu-validation/cuda-vector-add" in problem


def test_timeout_reports_scheduler_message():
    problem = unfinished_problem(unschedulable_pod(), UNSCHEDULABLE, 600)

    assert "Pod tkg-gpu-validation/cuda-vector-add did not finish within 600s" in problem
    assert "phase Pending" in problem
    assert "not scheduled: 0/3 nodes are available" in problem
    assert "2 Insufficient nvidia.com/gpu" in problem
    assert "validation.timeout" in problem


def test_timeout_keeps_last_scheduler_message():
    """The scheduler's message seen earlier is reported although the Pod has been scheduled since."""
    problem = unfinished_problem(pod("Pending", waiting=("ContainerCreating", "")), UNSCHEDULABLE, 30)

    assert "not scheduled: 0/3 nodes are available" in problem


def test_timeout_reports_container_waiting():
    problem = unfinished_problem(pod("Pending", waiting=("ContainerCreating", "")), None, 30)
    assert "container cuda-vector-add waiting: ContainerCreating" in problem


def test_unfinished_on_refresh_has_no_timeout():
    problem = unfinished_problem(pod("Running"), None, None)

    assert problem.startswith("Pod tkg-gpu-validation/cuda-vector-add has not finished")
    assert "no scheduling or container problem reported" in problem


def test_problems_empty_when_passed():
    assert validation_problems(pod("Succeeded", exit_code=0), CLUSTER_NODES, PASSED_LOG, 2, None, 600) == []


def test_problems_combine_gpus_and_scheduling():
    nodes = [node("gpu-wc-01-md-0-a", "0"), node("gpu-wc-01-md-0-b", "0")]

    problems = validation_problems(unschedulable_pod(), nodes, "", 2, None, 60)

    assert len(problems) == 2
    assert "expected 2 nvidia.com/gpu" in problems[0]
    assert "Insufficient nvidia.com/gpu" in problems[1]


def test_messages_in_chinese(monkeypatch, tmp_path):
    """The zh_CN catalog, compiled here from the .po so the test does not depend on the build step."""
    compiled = tmp_path / "zh_CN" / "LC_MESSAGES" / f"{i18n.DOMAIN}.mo"
    compiled.parent.mkdir(parents=True)
    with (i18n.LOCALE_DIR / "zh_CN" / "LC_MESSAGES" / f"{i18n.DOMAIN}.po").open("rb") as source:
        catalog = pofile.read_po(source, domain=i18n.DOMAIN)
    with compiled.open("wb") as target:
        mofile.write_mo(target, catalog)
    monkeypatch.setattr(i18n, "LOCALE_DIR", tmp_path)
    monkeypatch.setenv("LANGUAGE", "zh_CN")

    problem = finished_problem(pod("Failed", exit_code=1), FAILED_LOG)

    assert problem is not None
    assert "CUDA 验证失败" in problem
    assert "Failed to allocate device vector A" in problem


# ---------------------------------------------------------------------------------------------------------
# Kubeconfig handling and the provider's diff


def test_invalid_kubeconfig_not_echoed():
    secret_text = "client-key-data: c2VjcmV0LWtleQ==\n  : [unclosed"

    with pytest.raises(GpuValidationError) as caught:
        with gpu_validation.api_client(secret_text):
            pass

    assert "not valid YAML" in str(caught.value)
    assert "c2VjcmV0LWtleQ" not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__ is True


def test_kubeconfig_without_context_rejected():
    with pytest.raises(GpuValidationError) as caught:
        with gpu_validation.api_client(KUBECONFIG):
            pass

    assert "kubeconfig is invalid" in str(caught.value)
    assert "c2VjcmV0LWtleQ" not in str(caught.value)


def diff_props(**overrides) -> dict:
    props = {
        "namespace": "tkg-gpu-validation",
        "pod_name": "cuda-vector-add",
        "pod_uid": "uid-1",
        "expected_gpus": 2,
        "timeout_seconds": 600.0,
        "kubeconfig": KUBECONFIG,
        "provider_version": gpu_validation.PROVIDER_VERSION,
        "result": "Test PASSED",
    }
    props.update(overrides)

    return props


def test_diff_no_change():
    diff = gpu_validation.CudaValidationProvider().diff("id", diff_props(), diff_props())
    assert diff.changes is False
    assert diff.replaces is None


def test_diff_replaces_on_new_pod():
    diff = gpu_validation.CudaValidationProvider().diff("id", diff_props(), diff_props(pod_uid="uid-2"))
    assert diff.changes is True
    assert diff.replaces == ["pod_uid"]


def test_diff_replaces_on_expected_gpus():
    """Numbers come back from the state as floats; 2.0 and 2 are the same count."""
    provider = gpu_validation.CudaValidationProvider()
    assert provider.diff("id", diff_props(expected_gpus=2.0), diff_props()).changes is False
    assert provider.diff("id", diff_props(), diff_props(expected_gpus=4)).replaces == ["expected_gpus"]


def test_diff_replaces_after_failed_refresh():
    olds = diff_props(result="CUDA validation failed: ...")
    diff = gpu_validation.CudaValidationProvider().diff("id", olds, diff_props())
    assert diff.replaces == ["result"]


def test_diff_updates_on_timeout_change():
    diff = gpu_validation.CudaValidationProvider().diff("id", diff_props(), diff_props(timeout_seconds=60.0))
    assert diff.changes is True
    assert diff.replaces is None


def test_update_keeps_outputs():
    olds = {**diff_props(), "node": "gpu-wc-01-md-0-a", "allocatable_gpus": 2, "log_tail": "Test PASSED\nDone"}
    updated = gpu_validation.CudaValidationProvider().update("id", olds, diff_props(timeout_seconds=60.0))
    assert updated.outs["timeout_seconds"] == 60.0
    assert updated.outs["node"] == "gpu-wc-01-md-0-a"
    assert updated.outs["result"] == "Test PASSED"


# ---------------------------------------------------------------------------------------------------------
# Component under Pulumi mocks


def build_component(settings: ValidationSettings | None = None, registry: RegistrySettings | None = None):
    provider = k8s.Provider("workload", kubeconfig="{}")
    return gpu_validation.GpuValidation(
        "gpu-validation",
        settings=settings or ValidationSettings(),
        registry=registry,
        expected_gpus=2,
        kubeconfig=pulumi.Output.secret(KUBECONFIG),
        provider=provider,
    )


@pulumi.runtime.test
def test_pod_requests_one_gpu(mocks):
    component = build_component()

    def check(_):
        inputs = mocks.resources["gpu-validation-cuda-vector-add"]["inputs"]
        assert mocks.resources["gpu-validation-cuda-vector-add"]["type"] == "kubernetes:core/v1:Pod"
        [container] = inputs["spec"]["containers"]
        assert container["name"] == "cuda-vector-add"
        assert container["resources"]["limits"] == {"nvidia.com/gpu": "1"}
        assert container["image"] == "registry.k8s.io/cuda-vector-add:v0.1"
        assert inputs["spec"]["restartPolicy"] == "Never"
        assert inputs["spec"]["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]

    return component.result.apply(check)


@pulumi.runtime.test
def test_pod_metadata(mocks):
    component = build_component()

    def check(_):
        metadata = mocks.resources["gpu-validation-cuda-vector-add"]["inputs"]["metadata"]
        assert "name" not in metadata, "Pulumi names the Pod, so a replacement never collides with the old one"
        assert metadata["namespace"] == "tkg-gpu-validation"
        assert metadata["labels"] == {
            "app.kubernetes.io/name": "cuda-vector-add",
            "app.kubernetes.io/part-of": "tkg-gpu-validation",
        }
        assert metadata["annotations"] == {"pulumi.com/skipAwait": "true"}

    return component.result.apply(check)


@pulumi.runtime.test
def test_pod_passes_validation_policy(mocks):
    component = build_component()

    def check(_):
        inputs = mocks.resources["gpu-validation-cuda-vector-add"]["inputs"]
        assert inputs["metadata"]["labels"][rules.PART_OF_LABEL] == rules.VALIDATION_PART_OF
        assert rules.validation_requests_gpu(inputs, "gpu-validation-cuda-vector-add") == []

    return component.result.apply(check)


@pulumi.runtime.test
def test_pod_image_from_registry(mocks):
    component = build_component(registry=RegistrySettings(repository="harbor.example.com/tkg"))

    def check(_):
        [container] = mocks.resources["gpu-validation-cuda-vector-add"]["inputs"]["spec"]["containers"]
        assert container["image"] == "harbor.example.com/tkg/cuda-vector-add:v0.1"
        inputs = mocks.resources["gpu-validation-cuda-vector-add"]["inputs"]
        assert rules.pod_images_in_registry(inputs, "harbor.example.com/tkg", "gpu-validation-cuda-vector-add") == []

    return component.result.apply(check)


@pulumi.runtime.test
def test_namespace_from_settings(mocks):
    component = build_component(ValidationSettings(namespace="gpu-check", timeout="90s"))

    def check(_):
        namespace = mocks.resources["gpu-validation-namespace"]
        assert namespace["type"] == "kubernetes:core/v1:Namespace"
        assert namespace["inputs"]["metadata"]["name"] == "gpu-check"
        assert mocks.resources["gpu-validation-cuda-vector-add"]["inputs"]["metadata"]["namespace"] == "gpu-check"
        assert mocks.resources["gpu-validation-check"]["inputs"]["timeout_seconds"] == 90

    return component.result.apply(check)


@pulumi.runtime.test
def test_check_inputs(mocks):
    component = build_component()

    def check(result):
        check_resource = mocks.resources["gpu-validation-check"]
        assert check_resource["type"] == "pulumi-python:dynamic/tkggpu:CudaValidation"
        inputs = check_resource["inputs"]
        assert inputs["namespace"] == "tkg-gpu-validation"
        assert inputs["pod_name"] == "cuda-vector-add-1a2b3c4d"
        assert inputs["pod_uid"] == "uid-1"
        assert inputs["expected_gpus"] == 2
        assert inputs["timeout_seconds"] == 600
        # The mock monitor receives a secret as a signed wrapper around its value.
        assert inputs["kubeconfig"][rpc._special_sig_key] == rpc._special_secret_sig
        assert inputs["kubeconfig"]["value"] == KUBECONFIG
        assert result == "Test PASSED"

    return component.result.apply(check)


@pulumi.runtime.test
def test_kubeconfig_output_secret(mocks):
    component = build_component()

    def check(secret):
        assert secret is True

    return pulumi.Output.from_input(pulumi.Output.is_secret(component.validation.kubeconfig)).apply(check)


@pulumi.runtime.test
def test_disabled_creates_nothing(mocks):
    component = build_component(ValidationSettings(enabled=False))

    def check(result):
        assert result.startswith("skipped")
        assert not any(name.startswith("gpu-validation-") for name in mocks.resources)

    return component.result.apply(check)
