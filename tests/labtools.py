"""Helpers shared by provider and engine tests: lab start-up and direct vCenter reads with pyVmomi."""

from __future__ import annotations

import pathlib
import secrets
import shutil

import pytest

from components import vsphere
from lab.lab import Lab, LabSettings

ROOT = pathlib.Path(__file__).resolve().parent.parent


def require_tool(name: str) -> None:
    if shutil.which(name) is None:
        pytest.fail(f"{name} not found on PATH; run the tests through `make test`, which builds it")


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
