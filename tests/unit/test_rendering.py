import os
import pathlib

import pytest
import yaml

from components import config, gpu_profile, tkg_variables
from tests.unit.sites import T4, inventory, site_dict

GOLDEN = pathlib.Path(__file__).parent / "golden"


def render(raw, hosts):
    site = config.parse_site_config(raw)
    profile = gpu_profile.build_profile(site, hosts)
    return tkg_variables.render_variables(site, profile)


CASES = {
    "dev-a100": (site_dict(), inventory()),
    "edge-t4": (
        site_dict(site={"name": "edge-01", "kind": "edge"}, gpu={"model": "T4"}, cluster={"workerCount": 1}),
        inventory(gpus_per_host=1, pair=T4, hosts=2),
    ),
    "two-gpus-per-worker": (site_dict(gpu={"perWorker": 2}, cluster={"workerCount": 1}), inventory()),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_variables_match_golden(case):
    """Rendered TKG variables match the reviewed golden file; UPDATE_GOLDEN=1 rewrites it."""
    raw, hosts = CASES[case]
    rendered = tkg_variables.render_golden(render(raw, hosts))
    path = GOLDEN / f"{case}.yaml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(rendered)

    assert rendered == path.read_text()


def test_allow_list_flag_is_yaml_boolean():
    """The allow-list override renders as an unquoted YAML true, never a string."""
    text = tkg_variables.render_golden(render(*CASES["dev-a100"]))
    assert "VSPHERE_IGNORE_PCI_DEVICES_ALLOW_LIST: true\n" in text
    assert yaml.safe_load(text)["VSPHERE_IGNORE_PCI_DEVICES_ALLOW_LIST"] is True


def test_t4_needs_no_allow_list_flag_or_mmio():
    variables = render(*CASES["edge-t4"])
    assert "VSPHERE_IGNORE_PCI_DEVICES_ALLOW_LIST" not in variables
    assert "VSPHERE_WORKER_CUSTOM_VMX_KEYS" not in variables


def test_edge_timeouts_are_duration_strings():
    variables = render(*CASES["edge-t4"])
    assert variables["NODE_STARTUP_TIMEOUT"] == "60m"
    assert variables["MHC_FALSE_STATUS_TIMEOUT"] == "40m"


def test_mmio_for_two_a100_per_worker():
    variables = render(*CASES["two-gpus-per-worker"])
    assert variables["VSPHERE_WORKER_PCI_DEVICES"] == "0x10DE:0x20B5,0x10DE:0x20B5"
    assert "pciPassthru.64bitMMIOSizeGB=512" in variables["VSPHERE_WORKER_CUSTOM_VMX_KEYS"]
    assert "pciPassthru.allowP2P=TRUE" in variables["VSPHERE_WORKER_CUSTOM_VMX_KEYS"]


def test_rollout_on_delete_without_spare_gpu():
    """Four GPUs for four single-GPU workers leave no spare, so the rollout must not surge."""
    variables = render(site_dict(cluster={"workerCount": 4}), inventory())
    assert variables["WORKER_ROLLOUT_STRATEGY"] == "OnDelete"


def test_rollout_rolling_with_spare_gpu():
    variables = render(site_dict(cluster={"workerCount": 3}), inventory())
    assert variables["WORKER_ROLLOUT_STRATEGY"] == "RollingUpdate"


def test_password_only_in_config_file():
    variables = render(*CASES["dev-a100"])
    assert "VSPHERE_PASSWORD" not in variables
    text = tkg_variables.render_config_file(variables, "s3cret!")
    assert "s3cret!" not in text
    assert "VSPHERE_PASSWORD: <encoded:czNjcmV0IQ==>" in text


def test_not_enough_gpus():
    with pytest.raises(config.ConfigError, match=r"tkg-gpu:gpu: .*cannot back 5 worker VMs with 1 x 0x10DE:0x20B5"):
        render(site_dict(cluster={"workerCount": 5}), inventory())


def test_gpus_counted_per_host():
    """Two GPUs per worker cannot come from one GPU on each of two hosts."""
    with pytest.raises(config.ConfigError, match=r"esxi-01.lab.local: 0, esxi-02.lab.local: 0"):
        render(site_dict(gpu={"perWorker": 2}, cluster={"workerCount": 1}), inventory(gpus_per_host=1))


def test_model_matches_second_device_id():
    """An A100 PCIe 40GB that reports 0x20F1 is found through gpu.model."""
    raw = site_dict(gpu={"model": "A100-PCIE-40GB"})
    variables = render(raw, inventory(pair=(0x10DE, 0x20F1)))
    assert variables["VSPHERE_WORKER_PCI_DEVICES"] == "0x10DE:0x20F1"


def test_create_timeout_minimum():
    with pytest.raises(config.ConfigError, match=r"tkg-gpu:tanzu.createTimeout: must be at least 15m"):
        config.parse_site_config(site_dict(tanzu={"createTimeout": "10m"}))


def test_os_version_number_accepted():
    site = config.parse_site_config(site_dict(cluster={"osVersion": 22.04}))
    assert site.cluster.os_version == "22.04"


def test_missing_host_named():
    with pytest.raises(config.ConfigError, match="esxi-09.lab.local not found"):
        render(site_dict(hosts=["esxi-01.lab.local", "esxi-09.lab.local"]), inventory())


def test_mmio_override_too_small():
    with pytest.raises(config.ConfigError, match=r"tkg-gpu:cluster.mmioSizeGb: 128 GB is smaller than the 256 GB"):
        render(site_dict(cluster={"mmioSizeGb": 128}), inventory())


def test_unknown_gpu_needs_memory():
    raw = site_dict(gpu={"model": None, "vendorDevice": "0x10DE:0x1234"})
    with pytest.raises(config.ConfigError, match="tkg-gpu:gpu.memoryGb"):
        render(raw, inventory(pair=(0x10DE, 0x1234)))


def test_unknown_gpu_with_memory_renders():
    raw = site_dict(gpu={"model": None, "vendorDevice": "0x10de:0x1234", "memoryGb": 48})
    variables = render(raw, inventory(pair=(0x10DE, 0x1234)))
    assert variables["VSPHERE_WORKER_PCI_DEVICES"] == "0x10DE:0x1234"
    assert "pciPassthru.64bitMMIOSizeGB=128" in variables["VSPHERE_WORKER_CUSTOM_VMX_KEYS"]


def test_host_outside_compute_cluster():
    raw = site_dict(vcenter={"computeCluster": "other-cluster"})
    with pytest.raises(config.ConfigError, match=r"esxi-01.lab.local \(gpu-cluster\).*not in cluster other-cluster"):
        render(raw, inventory())


def test_worker_memory_above_host_memory():
    with pytest.raises(config.ConfigError, match=r"tkg-gpu:cluster.workerMemoryMib: 1048576 MiB is more than the largest host's memory \(524288 MiB\)"):
        render(site_dict(cluster={"workerMemoryMib": 1048576}), inventory())


def test_host_memory_limits_worker_slots():
    """Two 300 GiB workers cannot share a 512 GiB host even with two free GPUs on it."""
    with pytest.raises(config.ConfigError, match=r"esxi-01.lab.local: 1, esxi-02.lab.local: 1"):
        render(site_dict(cluster={"workerCount": 3, "workerMemoryMib": 300 * 1024}), inventory())


def test_registry_variables():
    ca = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg=="
    variables = render(site_dict(registry={"repository": "harbor.edge01.example.com/tkg", "caCertificate": ca}), inventory())
    assert variables["TKG_CUSTOM_IMAGE_REPOSITORY"] == "harbor.edge01.example.com/tkg"
    assert variables["TKG_CUSTOM_IMAGE_REPOSITORY_CA_CERTIFICATE"] == ca
    assert variables["TKG_CUSTOM_IMAGE_REPOSITORY_SKIP_TLS_VERIFY"] is False


@pytest.mark.parametrize(
    ("registry", "fragment"),
    [
        ({"repository": "https://harbor.example.com/tkg"}, "host[:port]/project"),
        ({"repository": "harbor.example.com"}, "host[:port]/project"),
        ({"repository": "harbor.example.com/tkg", "caCertificate": "not base64!"}, "base64 encoding of a PEM"),
        ({"repository": "harbor.example.com/tkg", "caCertificate": "aGVsbG8="}, "base64 encoding of a PEM"),
    ],
)
def test_registry_rejects(registry, fragment):
    with pytest.raises(config.ConfigError, match="tkg-gpu:registry") as caught:
        config.parse_site_config(site_dict(registry=registry))
    assert fragment in str(caught.value)


def test_config_file_counts_are_integers():
    """Numbers read back from the Pulumi state are floats, but the file must contain 2, not 2.0."""
    variables = dict(render(*CASES["dev-a100"]))
    variables["WORKER_MACHINE_COUNT"] = 2.0
    text = tkg_variables.render_config_file(variables, "pw")
    assert "WORKER_MACHINE_COUNT: 2\n" in text
