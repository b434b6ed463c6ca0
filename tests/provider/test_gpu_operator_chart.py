"""GpuOperator with the real Pulumi engine and Kubernetes provider: the lab's fixture chart on a kwok plane.

The program deploys the chart from ``lab/charts/gpu-operator`` to a control plane of ``lab.kube`` with two
fake GPU workers and one tainted control-plane node, then checks what Helm created and that the policy pack
accepts the Release. A second plane gets the same chart from an HTTP Helm repository that the test serves on
127.0.0.1 (``lab.chart_repo``). A third plane is an air-gapped site: ``registry.repository`` names the lab's
OCI registry (``lab.oci_registry``), which serves the chart pushed as ``helm push`` would, and the Kubernetes
provider trusts the registry's CA through ``SSL_CERT_FILE``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
import yaml

from lab.chart_repo import ChartRepository, package_chart, write_index
from lab.oci_registry import OciRegistry
from lab.stack import Stack
from tests import labtools
from tests.unit.sites import site_dict

if TYPE_CHECKING:
    from lab.kube import ControlPlane

PROJECT_FILES = ("components", "policies", "locale")
FIXTURE_CHART = labtools.ROOT / "lab" / "charts" / "gpu-operator"
GPU_NODE_LABEL = "feature.node.kubernetes.io/pci-10de.present"
GPU_WORKERS = ("gpu-worker-0", "gpu-worker-1")
CHART_VERSION = "v26.3.0-lab.1"
CHART_ARCHIVE = f"gpu-operator-{CHART_VERSION}.tgz"
REGISTRY_PROJECT = "tkg"
# Fixtures of the three chart sources that the checks of the Release and its objects run against.
DEPLOYMENTS = ("deployed", "deployed_from_repository", "deployed_from_registry")

PROGRAM = '''"""Test program: one GpuOperator from the site settings and GPU generations in $GPU_OPERATOR_TEST_INPUT."""

import json
import os
import pathlib

import pulumi
import pulumi_kubernetes as kubernetes

from components import config, gpu_operator

test_input = json.loads(pathlib.Path(os.environ["GPU_OPERATOR_TEST_INPUT"]).read_text())
kubeconfig = pathlib.Path(test_input["kubeconfig_path"]).read_text()
provider = kubernetes.Provider("workload", kubeconfig=pulumi.Output.secret(kubeconfig))
operator = gpu_operator.GpuOperator(
    "gpu-operator",
    site=config.parse_site_config(test_input["site"]),
    generations=set(test_input["generations"]),
    provider=provider,
)

pulumi.export("releaseName", operator.release_name)
pulumi.export("namespace", operator.namespace)
pulumi.export("status", operator.status)
pulumi.export("chartVersion", operator.chart_version)
'''


def pulumi_home() -> str:
    """Return PULUMI_HOME as the Makefile sets it, where the Kubernetes provider plugin is installed."""
    cache = os.environ.get("TKG_GPU_CACHE") or str(pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache") / "tkg-gpu")

    return os.environ.get("PULUMI_HOME") or str(pathlib.Path(cache) / "pulumi-home")


def write_project(target: pathlib.Path) -> None:
    """Write a project with the test program, a copy of the code and policies, and the fixture chart."""
    for name in PROJECT_FILES:
        shutil.copytree(labtools.ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(FIXTURE_CHART, target / "lab" / "charts" / "gpu-operator")

    venv = str(labtools.ROOT / ".venv")
    project = {"name": "gpu-operator-test", "runtime": {"name": "python", "options": {"toolchain": "pip", "virtualenv": venv}}}
    (target / "Pulumi.yaml").write_text(yaml.safe_dump(project))
    (target / "__main__.py").write_text(PROGRAM)
    pack_file = target / "policies" / "PulumiPolicy.yaml"
    pack = yaml.safe_load(pack_file.read_text())
    pack["runtime"]["options"]["virtualenv"] = venv
    pack_file.write_text(yaml.safe_dump(pack))


def create_nodes(plane) -> None:
    """Create kwok nodes as the tanzu double does: GPU workers with the NFD label, a tainted control plane."""
    import kubernetes.client

    nodes = [(name, {GPU_NODE_LABEL: "true"}, [], {"nvidia.com/gpu": "1"}) for name in GPU_WORKERS]
    nodes.append(
        (
            "control-plane-0",
            {"node-role.kubernetes.io/control-plane": ""},
            [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
            {},
        )
    )
    with plane.api_client() as client:
        core = kubernetes.client.CoreV1Api(client)
        for name, labels, taints, extra in nodes:
            capacity = {"cpu": "8", "memory": "32Gi", "pods": "110", **extra}
            core.create_node(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {"name": name, "labels": labels, "annotations": {"kwok.x-k8s.io/node": "fake"}},
                    "spec": {"taints": taints},
                    "status": {"capacity": capacity, "allocatable": capacity},
                }
            )


def helm_environment(home: pathlib.Path) -> dict[str, str]:
    """Return environment variables that give Helm in the provider its own empty HOME and Helm directories.

    Provider 4.34.2 takes the Release's repository config, repository cache, registry config and plugins
    directory from PULUMI_K8S_HELM_* variables, else from Helm's default paths, which follow HELM_CONFIG_HOME,
    HELM_CACHE_HOME and HELM_DATA_HOME before XDG_* and HOME (Configure in provider/pkg/provider/provider.go).
    Setting all of them keeps the user's repositories, cache and registry logins out of the run.
    """
    config, cache, data = home / ".config" / "helm", home / ".cache" / "helm", home / ".local" / "share" / "helm"
    for directory in (config, cache, data):
        directory.mkdir(parents=True, exist_ok=True)

    return {
        "HOME": str(home),
        "HELM_CONFIG_HOME": str(config),
        "HELM_CACHE_HOME": str(cache),
        "HELM_DATA_HOME": str(data),
        "HELM_REPOSITORY_CONFIG": str(config / "repositories.yaml"),
        "HELM_REPOSITORY_CACHE": str(cache / "repository"),
        "HELM_REGISTRY_CONFIG": str(config / "registry" / "config.json"),
        "HELM_PLUGINS": str(data / "plugins"),
        "PULUMI_K8S_HELM_REPOSITORY_CONFIG_PATH": str(config / "repositories.yaml"),
        "PULUMI_K8S_HELM_REPOSITORY_CACHE": str(cache / "repository"),
        "PULUMI_K8S_HELM_REGISTRY_CONFIG_PATH": str(config / "registry" / "config.json"),
        "PULUMI_K8S_HELM_PLUGINS_PATH": str(data / "plugins"),
    }


def write_input(
    path: pathlib.Path, plane: ControlPlane, chart: dict[str, str] | None, version: str, **site_overrides: object
) -> pathlib.Path:
    """Write the program's input: the plane's kubeconfig path and a Volta site that enforces Pod Security.

    Without ``chart`` the site keeps the default chart source, which a site registry replaces.
    """
    operator = {"version": version, "timeout": "3m", **({"chart": chart} if chart else {})}
    site = site_dict(cluster={"podSecurityStandardEnforce": "baseline"}, gpuOperator=operator, **site_overrides)
    path.write_text(json.dumps({"kubeconfig_path": str(plane.kubeconfig_path), "site": site, "generations": ["Volta"]}))

    return path


@contextlib.contextmanager
def operator_stack(
    work: pathlib.Path,
    chart: dict[str, str] | None,
    environment: dict[str, str] | None = None,
    **site_overrides: object,
) -> Iterator[tuple[Stack, ControlPlane]]:
    """Deploy the GpuOperator with ``gpuOperator.chart`` set to ``chart`` on a fresh plane; destroy it afterwards.

    ``environment`` is added to the Pulumi runs' environment, and ``site_overrides`` to the site settings.
    """
    labtools.require_tool("pulumi")
    with labtools.control_plane("workload", work / "plane") as plane:
        create_nodes(plane)
        project = work / "project"
        write_project(project)
        test_input = write_input(work / "input.json", plane, chart, CHART_VERSION, **site_overrides)
        stack = Stack(
            project_dir=project,
            name="test",
            backend_dir=work / "backend",
            passphrase="gpu-operator-test-passphrase",
            environment={
                "GPU_OPERATOR_TEST_INPUT": str(test_input),
                "PULUMI_HOME": pulumi_home(),
                **helm_environment(work / "home"),
                **(environment or {}),
            },
            log_path=work / "pulumi.log",
        )
        stack.init()
        stack.run("up", "--yes", "--skip-preview")
        yield stack, plane
        stack.run("destroy", "--yes", "--skip-preview")


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """The GpuOperator from the chart directory ``lab/charts/gpu-operator``, as a (stack, plane) pair."""
    with operator_stack(tmp_path_factory.mktemp("gpu-operator"), {"path": "lab/charts/gpu-operator"}) as deployment:
        yield deployment


@pytest.fixture(scope="module")
def chart_repository(tmp_path_factory):
    """An HTTP Helm repository on 127.0.0.1 with the fixture chart packaged as a .tgz."""
    directory = tmp_path_factory.mktemp("chart-repository")
    package_chart(FIXTURE_CHART, directory)
    write_index(directory)
    with ChartRepository(directory) as repository:
        yield repository


@pytest.fixture(scope="module")
def deployed_from_repository(tmp_path_factory, chart_repository):
    """The GpuOperator from ``chart_repository`` on its own plane, as a (stack, plane) pair."""
    work = tmp_path_factory.mktemp("gpu-operator-repository")
    with operator_stack(work, {"repository": chart_repository.url}) as deployment:
        yield deployment


@pytest.fixture(scope="module")
def oci_registry(tmp_path_factory):
    """The lab's OCI registry on 127.0.0.1 with the fixture chart pushed to ``tkg/gpu-operator``."""
    work = tmp_path_factory.mktemp("oci-registry")
    archive = package_chart(FIXTURE_CHART, work / "charts")
    with OciRegistry(work / "registry") as registry:
        registry.push_chart(archive, REGISTRY_PROJECT)
        yield registry


@pytest.fixture(scope="module")
def deployed_from_registry(tmp_path_factory, oci_registry):
    """The GpuOperator of an air-gapped site whose ``registry.repository`` is the lab's OCI registry."""
    work = tmp_path_factory.mktemp("gpu-operator-registry")
    with operator_stack(
        work,
        None,
        environment={"SSL_CERT_FILE": str(oci_registry.ca_file)},
        registry={"repository": f"{oci_registry.host}/{REGISTRY_PROJECT}"},
    ) as deployment:
        yield deployment


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_release_outputs(deployment, request):
    stack, _plane = request.getfixturevalue(deployment)

    outputs = stack.outputs()

    assert outputs == {
        "releaseName": "gpu-operator",
        "namespace": "gpu-operator",
        "status": "deployed",
        "chartVersion": CHART_VERSION,
    }


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_namespace_labelled_privileged(deployment, request):
    import kubernetes.client

    _stack, plane = request.getfixturevalue(deployment)
    with plane.api_client() as client:
        labels = kubernetes.client.CoreV1Api(client).read_namespace("gpu-operator").metadata.labels

    for mode in ("enforce", "audit", "warn"):
        assert labels.get(f"pod-security.kubernetes.io/{mode}") == "privileged", mode


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_operands_ready_on_gpu_nodes(deployment, request):
    import kubernetes.client

    _stack, plane = request.getfixturevalue(deployment)
    with plane.api_client() as client:
        apps = kubernetes.client.AppsV1Api(client)
        daemon_set = apps.read_namespaced_daemon_set("nvidia-device-plugin-daemonset", "gpu-operator")
        operator = apps.read_namespaced_deployment("gpu-operator", "gpu-operator")
        pods = kubernetes.client.CoreV1Api(client).list_namespaced_pod(
            "gpu-operator", label_selector="app.kubernetes.io/component=nvidia-device-plugin"
        )

    assert daemon_set.status.desired_number_scheduled == len(GPU_WORKERS)
    assert daemon_set.status.number_ready == len(GPU_WORKERS)
    assert sorted(pod.spec.node_name for pod in pods.items) == sorted(GPU_WORKERS)
    assert operator.status.ready_replicas == 1


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_cluster_policy_carries_driver_choice(deployment, request):
    import kubernetes.client

    _stack, plane = request.getfixturevalue(deployment)
    with plane.api_client() as client:
        policy = kubernetes.client.CustomObjectsApi(client).get_cluster_custom_object(
            "nvidia.com", "v1", "clusterpolicies", "cluster-policy"
        )

    assert policy["spec"]["driver"]["version"] == "580.126.20"
    assert policy["spec"]["driver"]["kernelModuleType"] == "proprietary"
    assert policy["spec"]["psa"] == {"enabled": True}


def test_policy_pack_accepts_release(deployed):
    """The pack's Release rules read the inputs the engine passes after the provider's Check."""
    stack, _plane = deployed

    result = stack.run("preview", "--policy-pack", "policies", check=False)
    output = result.stdout + result.stderr

    assert result.returncode == 0, output
    assert "tkg-gpu@" in output, "the policy pack did not run"
    assert "gpu-operator-chart-pinned" not in output
    assert "air-gapped-registry" not in output


def test_repository_chart_downloaded_by_helm(deployed_from_repository, chart_repository):
    """Helm read the index and the archive from the test's repository and cached the archive under the run's HOME."""
    stack, _plane = deployed_from_repository
    cache = pathlib.Path(stack.environment["PULUMI_K8S_HELM_REPOSITORY_CACHE"])

    assert "/index.yaml" in chart_repository.requests
    assert f"/{CHART_ARCHIVE}" in chart_repository.requests
    assert (cache / CHART_ARCHIVE).is_file()


def test_repository_missing_version_rejected(deployed_from_repository, chart_repository, tmp_path):
    """A version that the repository's index lacks fails the preview with the version and the repository URL."""
    stack, plane = deployed_from_repository
    missing = "v26.3.0-lab.2"
    test_input = write_input(tmp_path / "input.json", plane, {"repository": chart_repository.url}, missing)
    upgrade = dataclasses.replace(stack, environment={**stack.environment, "GPU_OPERATOR_TEST_INPUT": str(test_input)})

    result = upgrade.run("preview", check=False)
    output = result.stdout + result.stderr

    assert result.returncode != 0, output
    assert f'chart "gpu-operator" version "{missing}" not found in {chart_repository.url} repository' in output
    assert stack.outputs()["chartVersion"] == CHART_VERSION


def test_registry_chart_pulled_by_helm(deployed_from_registry, oci_registry):
    """With only registry.repository set, Helm pulled the chart's manifest and archive from the site registry."""
    requests = oci_registry.requests()

    assert f"GET /v2/{REGISTRY_PROJECT}/gpu-operator/manifests/{CHART_VERSION}" in requests
    assert any(request.startswith(f"GET /v2/{REGISTRY_PROJECT}/gpu-operator/blobs/sha256:") for request in requests)


def test_registry_operand_images_in_registry(deployed_from_registry, oci_registry):
    """Every image location in the installed ClusterPolicy and Deployment names the site registry."""
    import kubernetes.client

    _stack, plane = deployed_from_registry
    registry = f"{oci_registry.host}/{REGISTRY_PROJECT}"
    with plane.api_client() as client:
        policy = kubernetes.client.CustomObjectsApi(client).get_cluster_custom_object(
            "nvidia.com", "v1", "clusterpolicies", "cluster-policy"
        )
        operator = kubernetes.client.AppsV1Api(client).read_namespaced_deployment("gpu-operator", "gpu-operator")

    repositories = {name: section["repository"] for name, section in policy["spec"].items() if "repository" in section}
    repositories["operator.initContainer"] = policy["spec"]["operator"]["initContainer"]["repository"]

    assert repositories and all(repository == registry for repository in repositories.values()), repositories
    assert operator.spec.template.spec.containers[0].image.startswith(f"{registry}/gpu-operator:")


def test_registry_release_passes_air_gapped_policy(deployed_from_registry, oci_registry, tmp_path):
    """The pack's air-gapped-registry policy, given the site registry, accepts the Release from it."""
    stack, _plane = deployed_from_registry
    config_file = tmp_path / "policy-config.json"
    config_file.write_text(json.dumps({"air-gapped-registry": {"siteRegistry": f"{oci_registry.host}/{REGISTRY_PROJECT}"}}))

    result = stack.run("preview", "--policy-pack", "policies", "--policy-pack-config", str(config_file), check=False)
    output = result.stdout + result.stderr

    assert result.returncode == 0, output
    assert "tkg-gpu@" in output, "the policy pack did not run"
    assert "air-gapped-registry" not in output


def test_registry_ca_required(deployed_from_registry, oci_registry):
    """Without the registry's CA in SSL_CERT_FILE, Helm in the provider rejects the registry's certificate."""
    stack, _plane = deployed_from_registry
    environment = {key: value for key, value in stack.environment.items() if key != "SSL_CERT_FILE"}
    untrusted = dataclasses.replace(stack, environment=environment)

    result = untrusted.run("preview", "--refresh", check=False)
    output = result.stdout + result.stderr

    assert result.returncode != 0, output
    assert "certificate signed by unknown authority" in output
