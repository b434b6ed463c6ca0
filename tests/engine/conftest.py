"""Engine tests: the real Pulumi CLI, language host and dynamic providers against the whole lab."""

from __future__ import annotations

import pathlib
import shutil

import pytest
import yaml

from lab.stack import Stack, use_virtualenv
from tests import labtools
from tests.unit import sites

PROJECT_FILES = ("Pulumi.yaml", "__main__.py", "components", "policies", "locale", "lab/charts")
LAB_GPUS = "A100-PCIE-80GB:2,T4:1"
MERGED_SECTIONS = ("site", "vcenter", "cluster", "edge", "tanzu", "gpuOperator", "validation")
# The lab's own GPU Operator chart: engine tests never fetch a chart from outside the machine.
LAB_CHART = {"chart": {"path": "lab/charts/gpu-operator"}, "version": "v26.3.0-lab.1"}


@pytest.fixture(scope="session")
def password() -> str:
    return labtools.sentinel_password()


@pytest.fixture(scope="session")
def lab(tmp_path_factory, password):
    labtools.require_tool("pulumi")
    started = labtools.start_lab(tmp_path_factory.mktemp("lab"), password, hosts=2, gpus=LAB_GPUS)
    yield started
    started.stop()


@pytest.fixture(scope="session")
def project(tmp_path_factory) -> pathlib.Path:
    """Copy the program to a temporary project whose virtualenv paths point at the checkout's .venv."""
    target = tmp_path_factory.mktemp("project")
    for name in PROJECT_FILES:
        source = labtools.ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            shutil.copy2(source, target / name)

    use_virtualenv(target, labtools.ROOT / ".venv")

    return target


def site_config(lab, **overrides) -> dict:
    """Return stack configuration for the lab; ``overrides`` replace ``gpu`` and ``hosts`` and merge into the rest."""
    config = sites.site_dict(
        site={"kind": "edge"},
        vcenter={"server": lab.server, "username": lab.settings.username},
        cluster={"hardwareVersion": "vmx-17"},
        edge={"nodeStartupTimeout": "60m", "mhcFalseStatusTimeout": "40m"},
        tanzu={"createTimeout": "15m", "deleteTimeout": "2m"},
        gpuOperator=LAB_CHART,
        validation={"timeout": "2m"},
    )
    for key, value in overrides.items():
        config[key] = {**config[key], **value} if key in MERGED_SECTIONS else value

    return config


def lab_stack(project: pathlib.Path, lab, directory: pathlib.Path, name: str) -> Stack:
    """Create a stack of the copied project against the lab, with its backend and log file in ``directory``."""
    stack = Stack(
        project_dir=project,
        name=name,
        backend_dir=directory / "backend",
        passphrase="engine-test-passphrase",
        environment=lab.environment(),
        log_path=directory / "pulumi.log",
    )
    stack.init()

    return stack


def write_config(stack: Stack, settings: dict) -> None:
    """Replace the stack's ``tkg-gpu:`` settings in its Pulumi.<stack>.yaml, keeping the file's encryption salt."""
    path = stack.project_dir / f"Pulumi.{stack.name}.yaml"
    document = yaml.safe_load(path.read_text()) if path.exists() else {}
    document["config"] = {f"tkg-gpu:{key}": value for key, value in settings.items()}
    path.write_text(yaml.safe_dump(document))


@pytest.fixture
def make_stack(project, lab, password, tmp_path):
    """Create stacks of the copied project against the lab; each test's stacks share one log file."""
    created = []

    def factory(name: str, **overrides) -> Stack:
        stack = lab_stack(project, lab, tmp_path, name)
        write_config(stack, site_config(lab, **overrides))
        stack.set_secret("tkg-gpu:vcenterPassword", password)
        created.append(stack)

        return stack

    yield factory

    for stack in created:
        stack.run("destroy", "--yes", check=False)
        stack.remove()
