"""GpuOperator under Pulumi mocks, and its pure helpers: chart source, values and namespace labels."""

from __future__ import annotations

import pathlib
from collections.abc import Iterator
from typing import Any

import pulumi
import pulumi_kubernetes as kubernetes
import pytest
import yaml

from components import config, gpu_driver, gpu_operator, site
from components.config import GpuOperatorSettings
from policies import rules
from tests.unit.sites import site_dict

REGISTRY = "harbor.edge01.example.com/nvidia"
NGC = "https://helm.ngc.nvidia.com/nvidia"
ROOT = pathlib.Path(__file__).resolve().parents[2]
FIXTURE_CHART = ROOT / "lab" / "charts" / "gpu-operator"
AMPERE_DRIVER = gpu_driver.DriverChoice(enabled=True, version="580.126.20", kernel_module_type="open")


def settings(**values: Any) -> GpuOperatorSettings:
    return GpuOperatorSettings.model_validate(values)


def repositories(node: Any, path: str = "values") -> Iterator[tuple[str, str]]:
    """Yield ``(path, value)`` of every ``repository`` key in chart values."""
    if isinstance(node, dict):
        for key, child in node.items():
            if key == "repository" and isinstance(child, str):
                yield f"{path}.{key}", child
            else:
                yield from repositories(child, f"{path}.{key}")
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from repositories(child, f"{path}[{index}]")


# --- chart_source -----------------------------------------------------------------------------------------


def test_chart_source_default_repository(tmp_path):
    location = gpu_operator.chart_source(settings(), None, tmp_path)

    assert location == gpu_operator.ChartLocation(chart="gpu-operator", repository=NGC)


def test_chart_source_oci(tmp_path):
    location = gpu_operator.chart_source(settings(chart={"oci": "oci://charts.example.com/nvidia/gpu-operator"}), None, tmp_path)

    assert location == gpu_operator.ChartLocation(chart="oci://charts.example.com/nvidia/gpu-operator")


def test_chart_source_relative_path(tmp_path):
    location = gpu_operator.chart_source(settings(chart={"path": "lab/charts/gpu-operator"}), None, tmp_path)

    assert location.chart == str(tmp_path / "lab" / "charts" / "gpu-operator")
    assert location.repository is None


def test_chart_source_absolute_path(tmp_path):
    chart = tmp_path / "charts" / "gpu-operator-v26.3.0.tgz"
    location = gpu_operator.chart_source(settings(chart={"path": str(chart)}), None, pathlib.Path("/elsewhere"))

    assert location.chart == str(chart)


def test_chart_source_registry_replaces_default_repository(tmp_path):
    location = gpu_operator.chart_source(settings(), REGISTRY, tmp_path)

    assert location == gpu_operator.ChartLocation(chart=f"oci://{REGISTRY}/gpu-operator")


def test_chart_source_registry_replaces_outside_oci(tmp_path):
    configured = "oci://charts.example.com/nvidia/gpu-operator"

    location = gpu_operator.chart_source(settings(chart={"oci": configured}), REGISTRY, tmp_path)

    assert location.chart == f"oci://{REGISTRY}/gpu-operator"
    assert location.replaced == configured


@pytest.mark.parametrize(
    ("chart", "expected"),
    [
        ({"oci": f"oci://{REGISTRY}/charts/gpu-operator"}, gpu_operator.ChartLocation(chart=f"oci://{REGISTRY}/charts/gpu-operator")),
        (
            {"repository": "https://harbor.edge01.example.com/chartrepo/nvidia"},
            gpu_operator.ChartLocation(chart="gpu-operator", repository="https://harbor.edge01.example.com/chartrepo/nvidia"),
        ),
    ],
    ids=["oci", "repository"],
)
def test_chart_source_registry_keeps_source_inside(tmp_path, chart, expected):
    registry = "harbor.edge01.example.com"

    assert gpu_operator.chart_source(settings(chart=chart), registry, tmp_path) == expected


def test_chart_source_registry_keeps_path(tmp_path):
    location = gpu_operator.chart_source(settings(chart={"path": "charts/gpu-operator"}), REGISTRY, tmp_path)

    assert location.chart == str(tmp_path / "charts" / "gpu-operator")


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        (f"oci://{REGISTRY}/gpu-operator", True),
        ("oci://HARBOR.edge01.example.com/nvidia/gpu-operator", True),
        ("oci://harbor.edge01.example.com/nvidia-mirror/gpu-operator", False),
        ("oci://harbor.edge01.example.com.evil.example.org/nvidia/gpu-operator", False),
        (NGC, False),
    ],
)
def test_in_registry(reference, expected):
    assert gpu_operator.in_registry(reference, REGISTRY) is expected


def test_project_directory_finds_pulumi_yaml(tmp_path, monkeypatch):
    (tmp_path / "Pulumi.yaml").write_text("name: test\n")
    (tmp_path / "components").mkdir()
    monkeypatch.chdir(tmp_path / "components")
    monkeypatch.setattr(pulumi, "get_root_directory", lambda: None)

    assert site.project_directory() == tmp_path


# --- render_values ----------------------------------------------------------------------------------------


def test_values_without_registry():
    values = gpu_operator.render_values(settings(), AMPERE_DRIVER, registry=None, pod_security=False)

    assert values == {
        "driver": {"enabled": True, "version": "580.126.20", "kernelModuleType": "open"},
        "psa": {"enabled": False},
    }


def test_values_pod_security():
    values = gpu_operator.render_values(settings(), AMPERE_DRIVER, registry=None, pod_security=True)

    assert values["psa"] == {"enabled": True}


def test_values_driver_without_version():
    driver = gpu_driver.DriverChoice(enabled=False, version=None, kernel_module_type="auto")

    values = gpu_operator.render_values(settings(), driver, registry=None, pod_security=False)

    assert values["driver"] == {"enabled": False, "kernelModuleType": "auto"}


def test_values_registry_rewrites_every_operand():
    values = gpu_operator.render_values(settings(), AMPERE_DRIVER, registry=REGISTRY, pod_security=False)

    for section in gpu_operator.OPERAND_SECTIONS:
        node = values
        for key in section:
            node = node[key]
        assert node["repository"] == REGISTRY, ".".join(section)

    assert values["node-feature-discovery"] == {"image": {"repository": f"{REGISTRY}/node-feature-discovery"}}
    assert values["driver"]["version"] == "580.126.20"
    assert values["driver"]["manager"] == {"repository": REGISTRY}


def test_values_settings_merged_last():
    overrides = {
        "driver": {"version": "580.95.05", "rdma": {"enabled": True}},
        "devicePlugin": {"repository": f"{REGISTRY}/k8s"},
        "cdi": {"enabled": False},
    }

    values = gpu_operator.render_values(settings(values=overrides), AMPERE_DRIVER, registry=REGISTRY, pod_security=False)

    assert values["driver"]["version"] == "580.95.05"
    assert values["driver"]["kernelModuleType"] == "open"
    assert values["driver"]["rdma"] == {"enabled": True}
    assert values["driver"]["repository"] == REGISTRY
    assert values["devicePlugin"] == {"repository": f"{REGISTRY}/k8s"}
    assert values["cdi"] == {"enabled": False}


def test_values_leave_settings_unchanged():
    overrides = {"driver": {"rdma": {"enabled": True}}}
    configured = settings(values=overrides)

    values = gpu_operator.render_values(configured, AMPERE_DRIVER, registry=REGISTRY, pod_security=False)
    values["driver"]["rdma"]["enabled"] = False

    assert configured.values == {"driver": {"rdma": {"enabled": True}}}


def test_registry_release_passes_policy(tmp_path):
    configured = settings()
    location = gpu_operator.chart_source(configured, REGISTRY, tmp_path)
    props = {
        "name": configured.release_name,
        "chart": location.chart,
        "version": configured.version,
        "values": gpu_operator.render_values(configured, AMPERE_DRIVER, registry=REGISTRY, pod_security=True),
    }

    assert rules.release_references_in_registry(props, REGISTRY, "gpu-operator") == []
    assert rules.gpu_operator_chart_pinned(props, "gpu-operator") == []


def test_registry_values_cover_fixture_chart():
    """With a registry, every image location of the fixture chart's defaults is overridden into it."""
    defaults = yaml.safe_load((FIXTURE_CHART / "values.yaml").read_text())
    rendered = gpu_operator.render_values(settings(), AMPERE_DRIVER, registry=REGISTRY, pod_security=False)
    effective = gpu_operator.deep_merge(defaults, rendered)

    found = dict(repositories(effective))

    assert found, "the fixture chart's values.yaml has no repository keys"
    outside = {path: value for path, value in found.items() if not rules.in_registry(value, REGISTRY)}
    assert outside == {}


def test_namespace_labels():
    assert gpu_operator.namespace_labels(False) == {}
    assert gpu_operator.namespace_labels(True) == {
        "pod-security.kubernetes.io/enforce": "privileged",
        "pod-security.kubernetes.io/audit": "privileged",
        "pod-security.kubernetes.io/warn": "privileged",
    }


def test_fixture_chart_metadata():
    chart = yaml.safe_load((FIXTURE_CHART / "Chart.yaml").read_text())

    assert chart["name"] == "gpu-operator"
    assert chart["version"] == "v26.3.0-lab.1"
    assert gpu_driver.chart_default_driver(chart["version"]) == "580.126.20"


# --- GpuOperator under mocks ------------------------------------------------------------------------------


def declare(**overrides: Any) -> gpu_operator.GpuOperator:
    site = config.parse_site_config(site_dict(**overrides))
    provider = kubernetes.Provider("workload", kubeconfig="{}")

    return gpu_operator.GpuOperator(
        "gpu-operator",
        site=site,
        generations={"Ampere"},
        provider=provider,
    )


@pulumi.runtime.test
def test_component_namespace_without_pod_security(mocks):
    component = declare()

    def check(_):
        namespace = mocks.resources["gpu-operator-namespace"]
        assert namespace["type"] == "kubernetes:core/v1:Namespace"
        assert namespace["inputs"]["metadata"]["name"] == "gpu-operator"
        assert not namespace["inputs"]["metadata"].get("labels")

    return component.namespace.apply(check)


@pulumi.runtime.test
def test_component_namespace_with_pod_security(mocks):
    component = declare(cluster={"podSecurityStandardEnforce": "restricted"}, gpuOperator={"namespace": "nvidia-gpu"})

    def check(_):
        metadata = mocks.resources["gpu-operator-namespace"]["inputs"]["metadata"]
        assert metadata["name"] == "nvidia-gpu"
        assert metadata["labels"] == gpu_operator.namespace_labels(True)
        release = mocks.resources["gpu-operator-release"]["inputs"]
        assert release["namespace"] == "nvidia-gpu"
        assert release["values"]["psa"] == {"enabled": True}

    return pulumi.Output.all(component.namespace, component.release_name).apply(check)


@pulumi.runtime.test
def test_component_release_inputs(mocks):
    component = declare(gpuOperator={"releaseName": "nvidia-gpu-operator", "version": "v26.3.1", "timeout": "20m"})

    def check(_):
        release = mocks.resources["gpu-operator-release"]
        inputs = release["inputs"]
        assert release["type"] == "kubernetes:helm.sh/v3:Release"
        assert inputs["name"] == "nvidia-gpu-operator"
        assert inputs["version"] == "v26.3.1"
        assert inputs["chart"] == "gpu-operator"
        assert inputs["repositoryOpts"] == {"repo": NGC}
        assert inputs["namespace"] == "gpu-operator"
        assert inputs["createNamespace"] is False
        assert inputs["timeout"] == 1200
        assert inputs["atomic"] is True
        assert inputs["cleanupOnFail"] is True
        assert inputs["values"]["driver"] == {"enabled": True, "version": "580.126.20", "kernelModuleType": "open"}

    return component.release_name.apply(check)


@pulumi.runtime.test
def test_component_release_with_registry(mocks):
    component = declare(registry={"repository": REGISTRY})

    def check(_):
        inputs = mocks.resources["gpu-operator-release"]["inputs"]
        assert inputs["chart"] == f"oci://{REGISTRY}/gpu-operator"
        assert "repositoryOpts" not in inputs
        assert inputs["values"]["operator"] == {"repository": REGISTRY, "initContainer": {"repository": REGISTRY}}
        assert rules.release_references_in_registry(inputs, REGISTRY, "gpu-operator-release") == []
        assert rules.gpu_operator_chart_pinned(inputs, "gpu-operator-release") == []

    return component.release_name.apply(check)


@pulumi.runtime.test
def test_component_replaces_outside_chart(mocks):
    component = declare(registry={"repository": REGISTRY}, gpuOperator={"chart": {"oci": "oci://charts.example.com/nvidia/gpu-operator"}})

    def check(_):
        inputs = mocks.resources["gpu-operator-release"]["inputs"]
        assert inputs["chart"] == f"oci://{REGISTRY}/gpu-operator"

    return component.release_name.apply(check)


@pulumi.runtime.test
def test_component_release_from_path(mocks):
    component = declare(gpuOperator={"chart": {"path": str(FIXTURE_CHART)}, "version": "v26.3.0-lab.1"})

    def check(_):
        inputs = mocks.resources["gpu-operator-release"]["inputs"]
        assert inputs["chart"] == str(FIXTURE_CHART)
        assert "repositoryOpts" not in inputs
        assert inputs["version"] == "v26.3.0-lab.1"

    return component.release_name.apply(check)


def test_component_rejects_missing_chart_path(mocks, tmp_path):
    missing = tmp_path / "no-chart"

    with pytest.raises(config.ConfigError, match=r"gpuOperator\.chart\.path: .*no-chart not found"):
        declare(gpuOperator={"chart": {"path": str(missing)}})


@pulumi.runtime.test
def test_component_outputs(mocks):
    component = declare()

    def check(outputs):
        release_name, namespace, status, chart_version = outputs
        assert release_name == "gpu-operator"
        assert namespace == "gpu-operator"
        assert status == "deployed"
        assert chart_version == "v26.3.0"

    return pulumi.Output.all(component.release_name, component.namespace, component.status, component.chart_version).apply(check)


@pulumi.runtime.test
def test_component_children_parented(mocks):
    component = declare()

    def check(urns):
        namespace_urn, release_urn = urns
        assert "tkg-gpu:index:GpuOperator$kubernetes:core/v1:Namespace::gpu-operator-namespace" in namespace_urn
        assert "tkg-gpu:index:GpuOperator$kubernetes:helm.sh/v3:Release::gpu-operator-release" in release_urn

    return pulumi.Output.all(component.namespace_resource.urn, component.release.urn).apply(check)
