"""Shared test data of the tanzu double's tests; a unique module name, so no other conftest shadows it."""

from __future__ import annotations

import sys
from pathlib import Path

LAB_TANZU = Path(__file__).resolve().parents[1]
TANZU_BIN = LAB_TANZU / "bin" / "tanzu"
sys.path.insert(0, str(LAB_TANZU))

# Never used to log in: the vCenter-free tests stop before connecting, and port 0 accepts no connection.
TEST_PASSWORD = "S3cret-Do-Not-Print"

BASE_CONFIG = {
    "CLUSTER_NAME": "gpu-test",
    "CLUSTER_PLAN": "dev",
    "VSPHERE_SERVER": "127.0.0.1:0",
    "VSPHERE_USERNAME": "administrator@vsphere.local",
    "VSPHERE_PASSWORD": TEST_PASSWORD,
    "VSPHERE_INSECURE": True,
    "VSPHERE_DATACENTER": "dc-lab",
    "VSPHERE_FOLDER": "/dc-lab/vm",
    "VSPHERE_RESOURCE_POOL": "/dc-lab/host/gpu-cluster/Resources",
    "VSPHERE_DATASTORE": "datastore1",
    "VSPHERE_NETWORK": "VM Network",
    "VSPHERE_TEMPLATE": "tkg-ubuntu-2204-gpu",
    "VSPHERE_SSH_AUTHORIZED_KEY": "ssh-ed25519 AAAAC3Nza test@lab",
    "VSPHERE_CONTROL_PLANE_ENDPOINT": "127.0.0.1",
    "WORKER_MACHINE_COUNT": 2,
    "OS_NAME": "ubuntu",
    "OS_VERSION": "22.04",
}

GPU_SETTINGS = {
    "VSPHERE_WORKER_PCI_DEVICES": "0x10DE:0x20B5",
    "VSPHERE_IGNORE_PCI_DEVICES_ALLOW_LIST": True,
    "VSPHERE_WORKER_HARDWARE_VERSION": "vmx-19",
    "VSPHERE_WORKER_CUSTOM_VMX_KEYS": "pciPassthru.use64bitMMIO=TRUE,pciPassthru.64bitMMIOSizeGB=256",
    "VSPHERE_WORKER_MEM_MIB": 131072,
    "VSPHERE_WORKER_NUM_CPUS": 16,
}
