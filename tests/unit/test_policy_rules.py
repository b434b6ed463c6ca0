import pytest

from policies import rules


def cluster_props(pairs, version="vmx-17"):
    variables = {"VSPHERE_WORKER_PCI_DEVICES": ",".join(pairs)}
    if version is not None:
        variables["VSPHERE_WORKER_HARDWARE_VERSION"] = version

    return {"cluster_name": "gpu-wc-01", "variables": variables, "worker": {"pci_devices_hex": list(pairs)}}


def test_one_gpu_type_allows_identical_pairs():
    assert rules.one_gpu_type_per_vm(cluster_props(["0x10DE:0x20B5", "0x10DE:0x20B5"])) == []


def test_one_gpu_type_rejects_mixed_pairs():
    violations = rules.one_gpu_type_per_vm(cluster_props(["0x10DE:0x20B5", "0x10DE:0x1EB8"]))
    assert len(violations) == 1
    assert "mixes 2 GPU types" in violations[0]
    assert "0x10DE:0x1EB8, 0x10DE:0x20B5" in violations[0]


def test_one_gpu_type_without_devices():
    assert rules.one_gpu_type_per_vm({"cluster_name": "cpu-only"}) == []


@pytest.mark.parametrize("version", ["vmx-17", "vmx-19", "vmx-21"])
def test_hardware_version_accepts(version):
    assert rules.hardware_version_for_pci(cluster_props(["0x10DE:0x20B5"], version)) == []


@pytest.mark.parametrize("version", ["vmx-13", "vmx-15", "vmx-16", "17"])
def test_hardware_version_rejects_old(version):
    violations = rules.hardware_version_for_pci(cluster_props(["0x10DE:0x20B5"], version))
    assert len(violations) == 1
    assert f"is {version}" in violations[0]
    assert "vmx-17 or later" in violations[0]


def test_hardware_version_required_with_pci():
    violations = rules.hardware_version_for_pci(cluster_props(["0x10DE:0x20B5"], None))
    assert len(violations) == 1
    assert "default to vmx-15" in violations[0]


def test_hardware_version_not_needed_without_pci():
    assert rules.hardware_version_for_pci(cluster_props([], "vmx-13")) == []
