"""Helpers shared by provider and engine tests: lab start-up, direct vCenter reads with pyVmomi, engine test programs."""

from __future__ import annotations

import pathlib
import secrets
import shutil

import pytest

from components import vsphere
from lab.kube import ControlPlane
from lab.lab import Lab, LabSettings
from lab.stack import use_virtualenv

ROOT = pathlib.Path(__file__).resolve().parent.parent
# What an engine test program under tests/engine/programs needs next to it: the components that it and the
# policy pack import, the policy pack with its message catalogues, and the lab's charts.
PROGRAM_PROJECT_FILES = ("components", "policies", "locale", "lab/charts")


def require_tool(name: str) -> None:
    if shutil.which(name) is None:
        pytest.fail(f"{name} not found on PATH; run the tests through `make test`, which builds it")


def control_plane(name: str, directory: pathlib.Path) -> ControlPlane:
    """Return a lab control plane in ``directory`` for a ``with`` block, which starts and stops it.

    The test fails first when one of the plane's programs is missing from PATH.
    """
    for component in ControlPlane.COMPONENTS:
        require_tool(component)

    return ControlPlane(name, directory)


def copy_program_project(program_dir: pathlib.Path, target: pathlib.Path) -> pathlib.Path:
    """Copy an engine test program and PROGRAM_PROJECT_FILES to ``target``, with the checkout's .venv as virtualenv.

    The virtualenv becomes an absolute path in the program's Pulumi.yaml and in the pack's PulumiPolicy.yaml.
    Stack files (``Pulumi.<stack>.yaml``) of the program are left out.
    """
    shutil.copytree(program_dir, target, ignore=shutil.ignore_patterns("__pycache__", "Pulumi.*.yaml"))
    for name in PROGRAM_PROJECT_FILES:
        shutil.copytree(ROOT / name, target / name, ignore=shutil.ignore_patterns("__pycache__"))

    use_virtualenv(target, ROOT / ".venv")

    return target


def no_cluster_environment(home: pathlib.Path) -> dict[str, str]:
    """Return environment variables that leave the kubernetes provider no cluster to find.

    Even with ``renderYamlToDirectory``, provider 4.34.2 loads an ambient kubeconfig and requests the server
    version from its API server (Configure in provider/pkg/provider/provider.go). An empty ``home`` hides
    ~/.kube/config, the provider accepts an empty KUBECONFIG in render mode, and empty KUBERNETES_SERVICE_*
    variables turn off the in-cluster configuration.
    """
    return {
        "HOME": str(home),
        "KUBECONFIG": "",
        "KUBERNETES_SERVICE_HOST": "",
        "KUBERNETES_SERVICE_PORT": "",
    }


def sentinel_password() -> str:
    """Return a recognisable random password, so tests can scan state and logs for it."""
    return f"sentinel-{secrets.token_hex(12)}"


def start_lab(state_dir: pathlib.Path, password: str, **settings) -> Lab:
    require_tool("vcsim-gpu")
    return Lab(state_dir, password, LabSettings(**settings)).start()


def lab_connection(lab: Lab, password: str) -> vsphere.Connection:
    return vsphere.Connection(server=lab.server, username=lab.settings.username, password=password, insecure=True)


def read_lab_hosts(lab: Lab, password: str) -> dict[str, vsphere.HostState]:
    with vsphere.connect(lab_connection(lab, password)) as service_instance:
        return vsphere.read_hosts(service_instance)


def gpu_flags(lab: Lab, password: str) -> dict[tuple[str, str], tuple[bool, bool]]:
    """Return ``(enabled, active)`` of every NVIDIA GPU, by host and PCI address."""
    return {
        (host.name, device.pci_address): (device.enabled, device.active)
        for host in read_lab_hosts(lab, password).values()
        for device in host.devices
        if device.is_gpu
    }


def set_flag_directly(lab: Lab, password: str, host_name: str, pci_address: str, enabled: bool) -> None:
    """Change passthrough behind Pulumi's back, as an operator would in the vSphere Client."""
    with vsphere.connect(lab_connection(lab, password)) as service_instance:
        host = vsphere.find_host(vsphere.read_hosts(service_instance), host_name)
        vsphere.set_passthrough(host, pci_address, enabled)
