"""Site configurations and vCenter inventories shared by the unit tests."""

from __future__ import annotations

import copy
from typing import Any

from components import vsphere

A100_80 = (0x10DE, 0x20B5)
T4 = (0x10DE, 0x1EB8)

# A well-formed public key line that belongs to no private key.
LAB_SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGxhYi1vbmx5LWtleS1ub3QtZm9yLXJlYWwtc2l0ZXM lab@tkg-gpu"

BASE_SITE: dict[str, Any] = {
    "site": {"name": "lab", "kind": "datacenter"},
    "vcenter": {
        "server": "127.0.0.1:8989",
        "username": "administrator@vsphere.local",
        "insecure": True,
        "datacenter": "dc-lab",
        "computeCluster": "gpu-cluster",
        "datastore": "datastore1",
        "network": "VM Network",
        "resourcePool": "/dc-lab/host/gpu-cluster/Resources",
        "folder": "/dc-lab/vm",
        "template": "/dc-lab/vm/tkg-ubuntu-2204-gpu",
    },
    "hosts": ["esxi-01.lab.local", "esxi-02.lab.local"],
    "gpu": {"model": "A100-PCIE-80GB", "perWorker": 1},
    "cluster": {
        "name": "gpu-wc-01",
        "workerCount": 2,
        "workerMemoryMib": 65536,
        "controlPlaneEndpoint": "127.0.0.1",
        "sshAuthorizedKey": LAB_SSH_KEY,
    },
}


def site_dict(**overrides: Any) -> dict[str, Any]:
    """Return a deep copy of BASE_SITE with top-level sections merged from ``overrides``."""
    raw = copy.deepcopy(BASE_SITE)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value

    return raw


def gpu_device(host: str, address: str, pair: tuple[int, int], *, enabled: bool = False, active: bool = False) -> vsphere.PciDeviceState:
    return vsphere.PciDeviceState(
        host=host,
        pci_address=address,
        vendor_id=pair[0],
        device_id=pair[1],
        class_id=0x0302,
        vendor_name="NVIDIA Corporation",
        device_name="GPU",
        capable=True,
        enabled=enabled,
        active=active,
    )


def inventory(gpus_per_host: int = 2, pair: tuple[int, int] = A100_80, hosts: int = 2) -> dict[str, vsphere.HostState]:
    result = {}
    for index in range(1, hosts + 1):
        name = f"esxi-{index:02d}.lab.local"
        devices = tuple(gpu_device(name, f"0000:{0x3b + slot:02x}:00.0", pair) for slot in range(gpus_per_host))
        result[name] = vsphere.HostState(
            name=name,
            ref=None,
            compute_resource="gpu-cluster",
            passthrough_system=None,
            connection_state="connected",
            esxi_version="8.0.2",
            memory_bytes=512 * 1024**3,
            devices=devices,
        )

    return result


def template(firmware: str = "efi", hardware_version: str = "vmx-17") -> vsphere.TemplateState:
    return vsphere.TemplateState(
        path="/dc-lab/vm/tkg-ubuntu-2204-gpu",
        is_template=True,
        firmware=firmware,
        hardware_version=hardware_version,
        secure_boot=False,
    )
