"""Unit tests of the double's config reading and TKG-style validation (no subprocess)."""

from __future__ import annotations

import base64

import pytest
from tanzu_double_testdata import BASE_CONFIG, GPU_SETTINGS

from tanzu_double.config import FlatConfig, decode_password, go_string, is_truthy, load_yaml_document
from tanzu_double.errors import CliError
from tanzu_double.godur import GoDurationError, format_go_duration, parse_go_duration
from tanzu_double.validation import (
    Base16Error,
    PciDevice,
    ValidationError,
    build_cluster_spec,
    parse_custom_vmx_keys,
    parse_pci_devices,
    resolve_tkr,
    validate_hardware_version,
)
from tanzu_double.endpoint import split_server
from tanzu_double.vsphere import as_int16


def spec_from(changes: dict[str, object], environ: dict[str, str] | None = None, **kwargs):
    values = dict(BASE_CONFIG)
    values.update(changes)
    values = {key: value for key, value in values.items() if value is not None}
    return build_cluster_spec(FlatConfig(values, environ=environ or {}), kwargs.get("name"), None, None)


class TestPciDevices:
    def test_single_t4_pair(self):
        assert parse_pci_devices("0x10DE:0x1EB8", False) == [PciDevice(4318, 7864)]

    def test_hex_digits_any_case(self):
        assert parse_pci_devices("0x10de:0x1eb8", False) == [PciDevice(0x10DE, 0x1EB8)]

    def test_pairs_repeat_per_gpu(self):
        devices = parse_pci_devices("0x10DE:0x20B5,0x10DE:0x20B5", True)
        assert devices == [PciDevice(4318, 8373), PciDevice(4318, 8373)]

    def test_two_different_models_pass(self):
        devices = parse_pci_devices("0x10DE:0x20B5,0x10DE:0x2236", True)
        assert len({(d.vendor_id, d.device_id) for d in devices}) == 2

    def test_bare_hex_accepted_like_starlark(self):
        assert parse_pci_devices("10DE:1EB8", False) == [PciDevice(0x10DE, 0x1EB8)]

    @pytest.mark.parametrize("text", ["0x10DE-0x1EB8", "0x10DE:0x1EB8;0x10DE:0x1EB8", "0x10DE:0x1EB8,", ",0x10DE:0x1EB8", "0x10DE:0x1EB8:0x1"])
    def test_bad_separator_names_control_plane_variable(self, text):
        with pytest.raises(ValidationError) as caught:
            parse_pci_devices(text, True)
        assert "VSPHERE_CONTROL_PLANE_PCI_DEVICES" in str(caught.value)
        assert "VSPHERE_WORKER_PCI_DEVICES" not in str(caught.value)

    @pytest.mark.parametrize("text, bad", [("0xZZDE:0x1EB8", "0xZZDE"), ("0x10DE: 0x1EB8", " 0x1EB8"), ("0o17:0x1", "0o17")])
    def test_non_hex_gives_raw_base16_error(self, text, bad):
        with pytest.raises(Base16Error) as caught:
            parse_pci_devices(text, True)
        assert str(caught.value).endswith(f"int: invalid literal with base 16: {bad}")

    def test_allow_list_rejects_non_t4(self):
        with pytest.raises(ValidationError) as caught:
            parse_pci_devices("0x10DE:0x20B5", False)
        message = str(caught.value)
        assert "0x10DE:0x20B5" in message
        assert "0x10DE:0x1EB8" in message
        assert "VSPHERE_IGNORE_PCI_DEVICES_ALLOW_LIST" in message

    def test_ignore_allow_list_accepts_any(self):
        assert parse_pci_devices("0x1002:0x740F", True) == [PciDevice(0x1002, 0x740F)]


class TestVmxKeysAndHardwareVersion:
    def test_custom_vmx_keys_map(self):
        keys = parse_custom_vmx_keys("pciPassthru.use64bitMMIO=TRUE,pciPassthru.64bitMMIOSizeGB=256", "V")
        assert keys == {"pciPassthru.use64bitMMIO": "TRUE", "pciPassthru.64bitMMIOSizeGB": "256"}

    @pytest.mark.parametrize("text", ["a", "a=b;c=d", "a=b,", "a=b=c", "a=b,,c=d"])
    def test_custom_vmx_keys_bad_items(self, text):
        with pytest.raises(ValidationError) as caught:
            parse_custom_vmx_keys(text, "VSPHERE_WORKER_CUSTOM_VMX_KEYS")
        assert "VSPHERE_WORKER_CUSTOM_VMX_KEYS" in str(caught.value)

    @pytest.mark.parametrize("text", ["vmx-17", "vmx-19", "vmx-21"])
    def test_hardware_version_valid(self, text):
        assert validate_hardware_version(text, "V") == text

    @pytest.mark.parametrize("text", ["17", "vmx17", "VMX-17", "vmx-", "vmx-17a"])
    def test_hardware_version_invalid(self, text):
        with pytest.raises(ValidationError) as caught:
            validate_hardware_version(text, "VSPHERE_WORKER_HARDWARE_VERSION")
        assert "vmx-<N>" in str(caught.value)


class TestGoDuration:
    @pytest.mark.parametrize("text, seconds", [("40m", 2400), ("1h30m", 5400), ("1.5h", 5400), ("0", 0), ("90s", 90), ("500ms", 0.5), (".5s", 0.5)])
    def test_valid(self, text, seconds):
        assert parse_go_duration(text) == pytest.approx(seconds)

    @pytest.mark.parametrize("text", ["40", "", "1d", "m", "1h 30m", "abc", "."])
    def test_invalid(self, text):
        with pytest.raises(GoDurationError):
            parse_go_duration(text)

    def test_format_like_go(self):
        assert format_go_duration(1800) == "30m0s"
        assert format_go_duration(3600) == "1h0m0s"
        assert format_go_duration(0) == "0s"


class TestConfigReading:
    def test_environment_overrides_file(self):
        config = FlatConfig({"WORKER_MACHINE_COUNT": 2}, environ={"WORKER_MACHINE_COUNT": "5"})
        assert config.get("WORKER_MACHINE_COUNT") == "5"

    def test_values_read_as_strings(self):
        config = FlatConfig({"A": True, "B": 3, "C": None, "D": ""}, environ={})
        assert (config.get("A"), config.get("B"), config.get("C"), config.get("D")) == ("true", "3", None, None)

    @pytest.mark.parametrize("raw, expected", [(True, True), (False, False), ("true", True), ("false", False), ("False", False), ("0", False), ("1", True), ("", False), ("no", False), ("yes", True), ("f", True)])
    def test_truthiness_after_tkg_typing(self, raw, expected):
        assert is_truthy(go_string(raw) or None) is expected

    def test_yaml_12_scalars(self):
        document = load_yaml_document("A: yes\nB: 10:30\nC: 0x1F\nD: 2024-01-02\n", "test")
        assert document == {"A": "yes", "B": "10:30", "C": 31, "D": "2024-01-02"}

    def test_yaml_error_hides_text(self):
        with pytest.raises(CliError) as caught:
            load_yaml_document(f"VSPHERE_PASSWORD: {TEST_SECRET}\n  bad: [\n", "configuration file")
        assert TEST_SECRET not in str(caught.value)
        assert "line" in str(caught.value)

    def test_encoded_password(self):
        encoded = base64.b64encode(b"pa:ss").decode()
        assert decode_password(f"<encoded:{encoded}>") == "pa:ss"
        assert decode_password("plain") == "plain"

    def test_encoded_password_invalid(self):
        with pytest.raises(CliError) as caught:
            decode_password("<encoded:%%%>")
        assert "%%%" not in str(caught.value)


TEST_SECRET = "Hunter2-secret"


class TestClusterSpec:
    def test_gpu_config(self):
        spec = spec_from(GPU_SETTINGS)
        assert spec.worker.pci_devices == [PciDevice(4318, 8373)]
        assert spec.worker.effective_hardware_version == "vmx-19"
        assert spec.worker.memory_mib == 131072
        assert spec.worker.custom_vmx_keys["pciPassthru.64bitMMIOSizeGB"] == "256"
        assert spec.control_plane.pci_devices == []

    def test_devices_without_version_default_vmx15(self):
        spec = spec_from({**GPU_SETTINGS, "VSPHERE_WORKER_HARDWARE_VERSION": None})
        assert spec.worker.effective_hardware_version == "vmx-15"

    def test_version_without_devices_not_applied(self):
        spec = spec_from({"VSPHERE_WORKER_HARDWARE_VERSION": "vmx-19"})
        assert spec.worker.effective_hardware_version is None

    def test_name_from_config(self):
        assert spec_from({}).name == "gpu-test"

    def test_name_argument_wins(self):
        assert spec_from({}, name="other").name == "other"

    def test_name_required(self):
        with pytest.raises(ValidationError, match="cluster name is required"):
            spec_from({"CLUSTER_NAME": None})

    @pytest.mark.parametrize("name", ["Upper", "a", "under_score", "dot.name", "-lead", "x" * 64])
    def test_invalid_names(self, name):
        with pytest.raises(ValidationError, match="invalid cluster name"):
            spec_from({}, name=name)

    def test_plan_required(self):
        with pytest.raises(ValidationError, match="CLUSTER_PLAN"):
            spec_from({"CLUSTER_PLAN": None})

    def test_prod_plan_splits_workers(self):
        spec = spec_from({"CLUSTER_PLAN": "prod", "WORKER_MACHINE_COUNT": 4})
        assert [(pool.name, pool.replicas) for pool in spec.pools] == [("md-0", 2), ("md-1", 1), ("md-2", 1)]
        assert spec.control_plane_count == 3

    def test_dev_plan_defaults(self):
        spec = spec_from({"WORKER_MACHINE_COUNT": None})
        assert spec.control_plane_count == 1
        assert [(pool.name, pool.replicas) for pool in spec.pools] == [("md-0", 1)]

    def test_even_control_plane_rejected(self):
        with pytest.raises(ValidationError, match="odd"):
            spec_from({"CONTROL_PLANE_MACHINE_COUNT": 2})

    def test_missing_vsphere_variables_listed(self):
        with pytest.raises(ValidationError) as caught:
            spec_from({"VSPHERE_FOLDER": None, "VSPHERE_PASSWORD": None})
        assert "VSPHERE_PASSWORD, VSPHERE_FOLDER" in str(caught.value)

    def test_endpoint_required(self):
        with pytest.raises(ValidationError, match="VSPHERE_CONTROL_PLANE_ENDPOINT"):
            spec_from({"VSPHERE_CONTROL_PLANE_ENDPOINT": None})

    def test_memory_minimum(self):
        with pytest.raises(ValidationError, match="VSPHERE_WORKER_MEM_MIB is 4096"):
            spec_from({"VSPHERE_WORKER_MEM_MIB": 2048})

    def test_generic_size_used_when_role_unset(self):
        spec = spec_from({"VSPHERE_MEM_MIB": 16384})
        assert (spec.worker.memory_mib, spec.control_plane.memory_mib) == (16384, 16384)

    def test_worker_pci_error_names_control_plane(self):
        with pytest.raises(ValidationError) as caught:
            spec_from({**GPU_SETTINGS, "VSPHERE_WORKER_PCI_DEVICES": "0x10DE/0x20B5"})
        assert "VSPHERE_CONTROL_PLANE_PCI_DEVICES" in str(caught.value)

    def test_allow_list_flag_as_string_false(self):
        with pytest.raises(ValidationError, match="allow-list"):
            spec_from({**GPU_SETTINGS, "VSPHERE_IGNORE_PCI_DEVICES_ALLOW_LIST": "false"})

    def test_rollout_strategy(self):
        assert spec_from({"WORKER_ROLLOUT_STRATEGY": "OnDelete"}).worker_rollout_strategy == "OnDelete"
        with pytest.raises(ValidationError, match="WORKER_ROLLOUT_STRATEGY"):
            spec_from({"WORKER_ROLLOUT_STRATEGY": "Recreate"})

    @pytest.mark.parametrize("name", ["MHC_FALSE_STATUS_TIMEOUT", "MHC_UNKNOWN_STATUS_TIMEOUT", "NODE_STARTUP_TIMEOUT"])
    def test_mhc_duration_must_be_go_duration(self, name):
        assert spec_from({name: "40m"}).machine_health_check[name] == "40m"
        with pytest.raises(ValidationError, match=name):
            spec_from({name: 40})

    def test_tkr_prefix(self):
        assert resolve_tkr("v1.24") == "v1.24.11---vmware.1-tkg.1"
        with pytest.raises(ValidationError, match="could not find"):
            resolve_tkr("v9.9")


class TestVsphereHelpers:
    @pytest.mark.parametrize("server, expected", [("127.0.0.1:8989", ("127.0.0.1", 8989)), ("vc.lab", ("vc.lab", 443)), ("https://127.0.0.1:8443/sdk", ("127.0.0.1", 8443)), ("[::1]:9000", ("::1", 9000))])
    def test_split_server(self, server, expected):
        assert split_server(server) == expected

    def test_int16_ids(self):
        assert as_int16(0x10DE) == 4318
        assert as_int16(0x8001) == -32767
