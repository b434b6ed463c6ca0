"""End-to-end create and delete against a vCenter simulator on 127.0.0.1.

Skipped unless TANZU_DOUBLE_TEST_VSPHERE_SERVER names the simulator (host:port). The other
TANZU_DOUBLE_TEST_* variables below name its inventory; the defaults are the lab's vcsim-gpu
names. The host of the template must have exactly TANZU_DOUBLE_TEST_FREE_DEVICES (default 2)
free, passthrough-active devices of TANZU_DOUBLE_TEST_PCI_DEVICES. Other hosts do not count,
because vcsim-gpu keeps a clone without PCI devices on the template's host, and the double adds
the devices after the clone, as CAPV does. `vcsim-gpu --hosts 1 --gpus T4:2` with both T4s
passthrough-enabled fits the defaults.
"""

from __future__ import annotations

import json
import os
import ssl

import pytest
import yaml

SERVER = os.environ.get("TANZU_DOUBLE_TEST_VSPHERE_SERVER", "")
pytestmark = pytest.mark.skipif(not SERVER, reason="TANZU_DOUBLE_TEST_VSPHERE_SERVER is not set")

if SERVER and not SERVER.startswith(("127.0.0.1:", "localhost:", "[::1]:")):
    raise RuntimeError("TANZU_DOUBLE_TEST_VSPHERE_SERVER must be a simulator on the loopback address")


def setting(name: str, default: str) -> str:
    return os.environ.get(f"TANZU_DOUBLE_TEST_{name}", default)


DATACENTER = setting("DATACENTER", "dc-lab")
USERNAME = setting("USERNAME", "administrator@vsphere.local")
PASSWORD = setting("PASSWORD", "lab-password")
PCI_DEVICES = setting("PCI_DEVICES", "0x10DE:0x1EB8")
FREE_DEVICES = int(setting("FREE_DEVICES", "2"))
CREDENTIALS = {
    "TANZU_DOUBLE_VSPHERE_USERNAME": USERNAME,
    "TANZU_DOUBLE_VSPHERE_PASSWORD": PASSWORD,
    "TANZU_DOUBLE_DELETE_DELAY_SECONDS": "0",
}


@pytest.fixture
def gpu_config(tmp_path):
    config = {
        "CLUSTER_NAME": "e2e-gpu",
        "CLUSTER_PLAN": "dev",
        "VSPHERE_SERVER": SERVER,
        "VSPHERE_USERNAME": USERNAME,
        "VSPHERE_PASSWORD": PASSWORD,
        "VSPHERE_INSECURE": True,
        "VSPHERE_DATACENTER": DATACENTER,
        "VSPHERE_FOLDER": setting("FOLDER", f"/{DATACENTER}/vm"),
        "VSPHERE_RESOURCE_POOL": setting("RESOURCE_POOL", f"/{DATACENTER}/host/gpu-cluster/Resources"),
        "VSPHERE_DATASTORE": setting("DATASTORE", "LocalDS_0"),
        "VSPHERE_NETWORK": setting("NETWORK", "VM Network"),
        "VSPHERE_TEMPLATE": setting("TEMPLATE", "tkg-ubuntu-2204-gpu"),
        "VSPHERE_SSH_AUTHORIZED_KEY": "ssh-ed25519 AAAAC3Nza e2e@lab",
        "VSPHERE_CONTROL_PLANE_ENDPOINT": "127.0.0.1",
        "WORKER_MACHINE_COUNT": 1,
        "VSPHERE_WORKER_PCI_DEVICES": PCI_DEVICES,
        "VSPHERE_IGNORE_PCI_DEVICES_ALLOW_LIST": True,
        "VSPHERE_WORKER_HARDWARE_VERSION": "vmx-19",
        "VSPHERE_WORKER_MEM_MIB": 8192,
        "VSPHERE_WORKER_CUSTOM_VMX_KEYS": "pciPassthru.use64bitMMIO=TRUE,pciPassthru.64bitMMIOSizeGB=64",
    }
    path = tmp_path / "e2e.yaml"
    path.write_text(yaml.safe_dump(config))
    os.chmod(path, 0o600)
    return path


def vm_facts(name_prefix: str) -> dict[str, dict]:
    from pyVim.connect import Connect, Disconnect
    from pyVmomi import vim

    host, port = SERVER.rsplit(":", 1)
    service_instance = Connect(
        host=host.strip("[]"), port=int(port), user=USERNAME, pwd=PASSWORD,
        sslContext=ssl._create_unverified_context(), version="vim.version.v8_0_2_0",
    )
    try:
        view = service_instance.content.viewManager.CreateContainerView(
            service_instance.content.rootFolder, [vim.VirtualMachine], True
        )
        facts = {}
        for vm in view.view:
            if not vm.name.startswith(name_prefix):
                continue
            config = vm.config
            facts[vm.name] = {
                "version": config.version,
                "memoryMB": config.hardware.memoryMB,
                "locked": config.memoryReservationLockedToMax,
                "extra": {option.key: option.value for option in config.extraConfig or []},
                "pci": [
                    (type(device.backing).__name__, [(a.vendorId, a.deviceId) for a in device.backing.allowedDevice])
                    for device in config.hardware.device
                    if isinstance(device, vim.vm.device.VirtualPCIPassthrough)
                ],
            }
        view.DestroyView()
        return facts
    finally:
        Disconnect(service_instance)


def test_create_and_delete_gpu_cluster(tanzu, gpu_config):
    credentials = CREDENTIALS
    created = tanzu("cluster", "create", "-f", str(gpu_config))
    assert created.returncode == 0, created.stderr
    assert "Workload cluster 'e2e-gpu' created" in created.stderr
    assert PASSWORD not in created.stderr + created.stdout

    [info] = json.loads(tanzu("cluster", "list", "-o", "json").stdout)
    assert (info["status"], info["controlplane"], info["workers"]) == ("running", "1/1", "1/1")

    facts = vm_facts("e2e-gpu-md-0-")
    [worker] = facts.values()
    vendor, device = (int(part, 16) for part in PCI_DEVICES.split(",")[0].split(":"))
    assert worker["version"] == "vmx-19"
    assert worker["memoryMB"] == 8192
    assert worker["locked"] is True
    assert worker["extra"]["pciPassthru.64bitMMIOSizeGB"] == "64"
    assert worker["pci"] == [("vim.vm.device.VirtualPCIPassthrough.DynamicBackingInfo", [(vendor, device)])]

    assert tanzu("cluster", "delete", "e2e-gpu", "-y", env=credentials).returncode == 0
    assert tanzu("cluster", "list", "-o", "json", env=credentials).stdout == "[]"
    assert vm_facts("e2e-gpu-") == {}


def listed_cluster(tanzu) -> dict:
    result = tanzu("cluster", "list", "-o", "json", env=CREDENTIALS)
    assert result.returncode == 0, result.stderr
    [info] = json.loads(result.stdout)
    return info


def test_scale_gpu_workers(tanzu, gpu_config):
    """Scale-up clones workers like create, a worker without a free GPU fails the scale, scale-down queues VMs."""
    created = tanzu("cluster", "create", "-f", str(gpu_config))
    assert created.returncode == 0, created.stderr
    try:
        [first_name] = vm_facts("e2e-gpu-md-0-")

        scaled = tanzu("cluster", "scale", "e2e-gpu", "-w", str(FREE_DEVICES), env=CREDENTIALS)
        assert scaled.returncode == 0, scaled.stderr
        assert scaled.stderr.rstrip("\n").endswith("Workload cluster 'e2e-gpu' is being scaled")
        assert PASSWORD not in scaled.stderr + scaled.stdout
        info = listed_cluster(tanzu)
        assert (info["status"], info["workers"]) == ("running", f"{FREE_DEVICES}/{FREE_DEVICES}")

        facts = vm_facts("e2e-gpu-md-0-")
        assert len(facts) == FREE_DEVICES
        first = facts.pop(first_name)
        for name, added in facts.items():
            assert added == first, name
        assert first["version"] == "vmx-19"
        assert first["locked"] is True

        # One worker more than there are free GPUs: vCenter refuses its power-on.
        too_many = tanzu("cluster", "scale", "e2e-gpu", "-w", str(FREE_DEVICES + 1), env=CREDENTIALS)
        assert too_many.returncode == 1
        assert "no free passthrough-active PCI device" in too_many.stderr
        assert "1 of 1 new machines failed" in too_many.stderr
        info = listed_cluster(tanzu)
        assert (info["status"], info["workers"]) == ("updating", f"{FREE_DEVICES}/{FREE_DEVICES + 1}")
        assert len(vm_facts("e2e-gpu-md-0-")) == FREE_DEVICES + 1

        # Scaling down drops the failed machine first; the next invocation destroys its VM.
        down = tanzu("cluster", "scale", "e2e-gpu", "-w", str(FREE_DEVICES - 1), env=CREDENTIALS)
        assert down.returncode == 0, down.stderr
        info = listed_cluster(tanzu)
        assert (info["status"], info["workers"]) == ("running", f"{FREE_DEVICES - 1}/{FREE_DEVICES - 1}")
        assert len(vm_facts("e2e-gpu-md-0-")) == FREE_DEVICES - 1
    finally:
        deleted = tanzu("cluster", "delete", "e2e-gpu", "-y", env=CREDENTIALS)
        assert deleted.returncode == 0, deleted.stderr
        assert tanzu("cluster", "list", "-o", "json", env=CREDENTIALS).stdout == "[]"
    assert vm_facts("e2e-gpu-") == {}
