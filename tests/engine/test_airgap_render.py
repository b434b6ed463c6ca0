"""Air-gapped sites: with ``registry.repository`` set, no rendered image or chart reference leaves the registry.

The program in programs/airgap_render builds the GPU Operator values, chart reference and validation image
with the same functions GpuOperator and GpuValidation use. ``pulumi up`` then renders the lab's fixture
chart (lab/charts/gpu-operator, with the value keys of NVIDIA's chart) and the validation Pod through a
kubernetes Provider with ``renderYamlToDirectory``, so the real engine and provider plugin write every
manifest to disk. No cluster is involved. In render mode the provider still loads an ambient kubeconfig and
queries its API server for the version (Configure in pulumi-kubernetes provider/pkg/provider/provider.go, the
code of plugin 4.34.2), so the runs get an empty HOME, an empty KUBECONFIG and no in-cluster variables.
"""

from __future__ import annotations

import dataclasses
import json
import re
import pathlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest
import yaml

from components import gpu_operator
from components.config import GpuOperatorSettings
from lab.stack import Stack
from policies import rules
from tests import labtools
from tests.unit import sites

REGISTRY = "harbor.edge-sh01.example.com/tkg"
PROGRAM_DIR = pathlib.Path(__file__).resolve().parent / "programs" / "airgap_render"
LAB_CHART = {"chart": {"path": "lab/charts/gpu-operator"}, "version": "v26.3.0-lab.1"}
PASSPHRASE = "airgap-render-test"
COMMAND_TIMEOUT_SECONDS = 300
# An override in gpuOperator.values that points one operand back at NVIDIA's registry.
OUTSIDE_OVERRIDE = {"devicePlugin": {"repository": "nvcr.io/nvidia"}}

# Each image location the fixture chart renders, as (kind, path) of image_references.
EXPECTED_MANIFEST_REFERENCES = {
    ("Deployment", "spec.template.spec.containers[0].image"),
    ("DaemonSet", "spec.template.spec.containers[0].image"),
    ("Pod", "spec.containers[0].image"),
    *(
        ("ClusterPolicy", f"spec.{section}.repository")
        for section in (
            "operator.initContainer",
            "validator",
            "driver",
            "driver.manager",
            "toolkit",
            "devicePlugin",
            "dcgm",
            "dcgmExporter",
            "gfd",
            "migManager",
            "nodeStatusExporter",
        )
    ),
}


def image_references(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Yield ``(path, reference)`` for every string under an ``image`` or ``repository`` key, at any depth.

    A mapping with a ``repository`` string is an image location of NVIDIA's chart layout: the reference is
    ``<repository>/<image>`` when a sibling ``image`` string names the image, else the repository alone.
    Any other ``image`` string is a full reference, as in a container. Non-string values, such as the
    schemas of a CustomResourceDefinition, are walked but never reported.
    """
    prefix = f"{path}." if path else ""
    if isinstance(node, Mapping):
        repository = node.get("repository")
        image = node.get("image")
        if isinstance(repository, str):
            reference = f"{repository}/{image}" if isinstance(image, str) else repository
            yield f"{prefix}repository", reference
        elif isinstance(image, str):
            yield f"{prefix}image", image

        for key, child in node.items():
            if isinstance(child, (Mapping, Sequence)) and not isinstance(child, str):
                yield from image_references(child, f"{prefix}{key}")
    elif isinstance(node, Sequence) and not isinstance(node, str):
        for index, child in enumerate(node):
            yield from image_references(child, f"{path}[{index}]")


def in_site_registry(reference: str) -> bool:
    return reference == REGISTRY or reference.startswith(f"{REGISTRY}/")


@dataclasses.dataclass(frozen=True)
class Rendered:
    """Manifests one ``pulumi up`` wrote, with the program's stack outputs."""

    outputs: dict[str, Any]
    documents: list[tuple[str, dict[str, Any]]]
    """``(file name relative to the render directory, document)`` of every YAML document."""

    def references(self) -> list[tuple[str, str, str, str]]:
        """Return ``(file, kind, path, reference)`` for every image reference of every document."""
        return [
            (name, document.get("kind", "?"), path, reference)
            for name, document in self.documents
            for path, reference in image_references(document)
        ]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> pathlib.Path:
    labtools.require_tool("pulumi")

    return tmp_path_factory.mktemp("airgap-render")


@pytest.fixture(scope="module")
def project(workspace) -> pathlib.Path:
    """Copy the program, components, policy pack and lab chart to a project whose virtualenv is the checkout's."""
    return labtools.copy_program_project(PROGRAM_DIR, workspace / "project")


@pytest.fixture(scope="module")
def make_stack(workspace, project):
    """Create a stack of the program from site overrides and program settings; no cluster is configured."""
    home = workspace / "home"
    home.mkdir()
    environment = labtools.no_cluster_environment(home)

    def factory(name: str, program: Mapping[str, str], **site_overrides: Any) -> Stack:
        stack = Stack(
            project_dir=project,
            name=name,
            backend_dir=workspace / "backend",
            passphrase=PASSPHRASE,
            environment=environment,
            log_path=workspace / "pulumi.log",
        )
        stack.init()
        settings = {f"tkg-gpu:{key}": value for key, value in sites.site_dict(**site_overrides).items()}
        settings.update({f"airgap-render:{key}": value for key, value in program.items()})
        (project / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump({"config": settings}))

        return stack

    return factory


def render(make_stack, workspace: pathlib.Path, name: str, **site_overrides: Any) -> Rendered:
    directory = workspace / f"render-{name}"
    stack = make_stack(name, {"renderDirectory": str(directory)}, gpuOperator=LAB_CHART, **site_overrides)
    stack.run("up", "--yes", "--skip-preview", timeout=COMMAND_TIMEOUT_SECONDS)

    documents = []
    for path in sorted(directory.rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                documents.append((str(path.relative_to(directory)), document))

    return Rendered(outputs=stack.outputs(), documents=documents)


def preview_with_policies(make_stack, workspace: pathlib.Path, name: str, **site_overrides: Any):
    """Preview the real GpuOperator and GpuValidation with the policy pack and ``siteRegistry`` set."""
    stack = make_stack(
        name,
        {"renderDirectory": str(workspace / f"render-{name}"), "mode": "components"},
        gpuOperator=site_overrides.pop("gpuOperator", LAB_CHART),
        **site_overrides,
    )
    config_file = workspace / "policy-config.json"
    config_file.write_text(json.dumps({"air-gapped-registry": {"siteRegistry": REGISTRY}}))
    result = stack.run(
        "preview", "--policy-pack", "policies", "--policy-pack-config", str(config_file), check=False, timeout=COMMAND_TIMEOUT_SECONDS
    )

    return result, result.stdout + result.stderr


@pytest.fixture(scope="module")
def airgap(make_stack, workspace) -> Rendered:
    return render(make_stack, workspace, "airgap", registry={"repository": REGISTRY})


@pytest.fixture(scope="module")
def open_site(make_stack, workspace) -> Rendered:
    return render(make_stack, workspace, "open-site")


def test_image_references_cover_every_container_kind():
    pod = {
        "spec": {
            "initContainers": [{"name": "init", "image": "nvcr.io/nvidia/cuda:12.8.1-base-ubi9"}],
            "containers": [{"name": "main", "image": f"{REGISTRY}/app:1"}],
            "ephemeralContainers": [{"name": "debug", "image": "busybox"}],
        },
        "values": {"driver": {"repository": "nvcr.io/nvidia", "image": "driver", "manager": {"repository": REGISTRY}}},
    }

    found = dict(image_references(pod))

    assert found == {
        "spec.initContainers[0].image": "nvcr.io/nvidia/cuda:12.8.1-base-ubi9",
        "spec.containers[0].image": f"{REGISTRY}/app:1",
        "spec.ephemeralContainers[0].image": "busybox",
        "values.driver.repository": "nvcr.io/nvidia/driver",
        "values.driver.manager.repository": REGISTRY,
    }


def test_airgap_render_writes_expected_manifests(airgap):
    kinds = {document.get("kind") for _name, document in airgap.documents}
    located = {(kind, path) for _name, kind, path, _reference in airgap.references()}

    assert {"CustomResourceDefinition", "Deployment", "DaemonSet", "ClusterPolicy", "Pod"} <= kinds
    assert EXPECTED_MANIFEST_REFERENCES <= located


def test_airgap_manifests_reference_only_registry(airgap):
    outside = [entry for entry in airgap.references() if not in_site_registry(entry[3])]

    assert airgap.references(), "no image reference found in the rendered manifests"
    assert outside == [], f"image references outside {REGISTRY}: {outside}"


def test_airgap_validation_image_in_registry(airgap):
    assert airgap.outputs["validationImage"] == f"{REGISTRY}/cuda-vector-add:v0.1"


def test_airgap_values_reference_only_registry(airgap):
    values = airgap.outputs["values"]
    references = dict(image_references(values))
    outside = {path: reference for path, reference in references.items() if not in_site_registry(reference)}

    assert outside == {}
    for section in gpu_operator.OPERAND_SECTIONS:
        assert ".".join(section) + ".repository" in references
    assert references[f"{gpu_operator.NFD_SECTION}.image.repository"] == f"{REGISTRY}/{gpu_operator.NFD_IMAGE}"


def test_airgap_chart_reference_is_local(airgap, project):
    chart = pathlib.Path(airgap.outputs["chart"])

    assert chart.is_absolute()
    assert chart == project / "lab" / "charts" / "gpu-operator"
    assert airgap.outputs.get("chartRepository") is None


def test_airgap_release_inputs_pass_registry_rule(airgap):
    props = {"name": "gpu-operator", "chart": airgap.outputs["chart"], "values": airgap.outputs["values"]}

    assert rules.release_references_in_registry(props, REGISTRY, "gpu-operator") == []


def test_default_chart_moves_into_registry(tmp_path):
    location = gpu_operator.chart_source(GpuOperatorSettings(), REGISTRY, tmp_path)

    assert location.chart == f"oci://{REGISTRY}/{gpu_operator.CHART_NAME}"
    assert location.repository is None


def test_open_site_renders_outside_references(open_site):
    outside = {(kind, reference) for _name, kind, _path, reference in open_site.references() if not in_site_registry(reference)}

    assert ("Deployment", "nvcr.io/nvidia/gpu-operator:v26.3.0-lab.1") in outside
    assert ("Pod", "registry.k8s.io/cuda-vector-add:v0.1") in outside
    assert ("ClusterPolicy", "nvcr.io/nvidia/driver") in outside


def test_policy_pack_accepts_airgap_components(make_stack, workspace):
    result, output = preview_with_policies(make_stack, workspace, "policy-airgap", registry={"repository": REGISTRY})

    assert result.returncode == 0, output
    assert "air-gapped-registry" not in output


def test_policy_pack_rejects_outside_references(make_stack, workspace):
    result, output = preview_with_policies(
        make_stack,
        workspace,
        "policy-open",
        gpuOperator={**LAB_CHART, "values": OUTSIDE_OVERRIDE},
    )

    assert result.returncode != 0, output
    assert "air-gapped-registry" in output
    assert "values.devicePlugin.repository is nvcr.io/nvidia" in output
    assert re.search(r"Pod \S*cuda-vector-add\S*: spec.containers", output), output
    assert "registry.k8s.io/cuda-vector-add:v0.1" in output
