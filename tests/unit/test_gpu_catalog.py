import pytest

from components import gpu_catalog


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(0x10DE, 0x10DE), (-8706, 0xDDFE), (-1, 0xFFFF), (0, 0), (0x7FFF, 0x7FFF), (-0x8000, 0x8000)],
    ids=["vendor", "negative-device", "minus-one", "zero", "max-positive", "min-negative"],
)
def test_normalize_pci_id_unsigned(raw, expected):
    """Signed 16-bit vSphere IDs become unsigned values."""
    assert gpu_catalog.normalize_pci_id(raw) == expected


def test_signed_round_trip():
    """Every unsigned ID survives conversion to the signed API form and back."""
    for value in (0, 0x10DE, 0x7FFF, 0x8000, 0xDDFE, 0xFFFF):
        assert gpu_catalog.normalize_pci_id(gpu_catalog.to_signed_pci_id(value)) == value


def test_normalize_out_of_range():
    with pytest.raises(ValueError, match="outside the 16-bit range"):
        gpu_catalog.normalize_pci_id(0x10000)


def test_format_pci_pair_upper_hex():
    assert gpu_catalog.format_pci_pair(0x10DE, -8706) == "0x10DE:0xDDFE"


@pytest.mark.parametrize("text", ["0x10de:0x20b5", "0x10DE:0x20B5", " 0x10de : 0x20B5 "])
def test_parse_pci_pair_any_case(text):
    assert gpu_catalog.parse_pci_pair(text) == (0x10DE, 0x20B5)


@pytest.mark.parametrize("text", ["10de:20b5", "0x10DE;0x20B5", "0x10DE:0xZZZZ", "0x10DE", "0x10DE:0x20B5:0x1"])
def test_parse_pci_pair_rejects(text):
    with pytest.raises(ValueError, match="0xVVVV:0xDDDD"):
        gpu_catalog.parse_pci_pair(text)


@pytest.mark.parametrize(
    ("memory", "count", "expected"),
    [(16, 1, 32), (16, 2, 64), (16, 4, 128), (16, 8, 256), (24, 1, 64), (40, 1, 128), (80, 1, 256),
     (80, 8, 2048), (94, 1, 256), (141, 1, 512), (141, 8, 4096), (48, 2, 256)],
)
def test_mmio_size_table(memory, count, expected):
    """MMIO sizes match the per-GPU table for 1, 2, 4 and 8 GPUs per VM."""
    assert gpu_catalog.mmio_size_gb(memory, count) == expected


def test_mmio_size_bounds():
    """Every catalogue MMIO size is a power of two and at least twice the VM's GPU memory."""
    for model in gpu_catalog.GPU_MODELS:
        for count in (1, 2, 3, 4, 8):
            size = gpu_catalog.mmio_size_gb(model.memory_gb, count)
            assert size & (size - 1) == 0, f"{model.key} x{count}: {size} is not a power of two"
            assert size >= 2 * model.memory_gb * count, f"{model.key} x{count}: {size} GB is too small"


def test_mmio_rejects_zero():
    with pytest.raises(ValueError, match="must be positive"):
        gpu_catalog.mmio_size_gb(0, 1)


def test_model_lookup_both_a100_40gb_ids():
    """One product with two device IDs resolves from either ID."""
    assert gpu_catalog.model_for_device(0x10DE, 0x20B1).key == "A100-PCIE-40GB"
    assert gpu_catalog.model_for_device(0x10DE, 0x20F1).key == "A100-PCIE-40GB"


def test_unknown_device_is_none():
    assert gpu_catalog.model_for_device(0x10DE, 0x1234) is None
    assert gpu_catalog.model_for_device(0x8086, 0x20B5) is None


def test_allow_list_only_t4():
    assert gpu_catalog.is_tkg_allow_listed(0x10DE, 0x1EB8)
    allowed = [model.key for model in gpu_catalog.GPU_MODELS if gpu_catalog.is_tkg_allow_listed(0x10DE, model.device_ids[0])]
    assert allowed == ["T4"]


def test_catalogue_device_ids_unique():
    ids = [device for model in gpu_catalog.GPU_MODELS for device in model.device_ids]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    ("esxi", "expected"),
    [("6.5.0", 13), ("6.7.0", 14), ("7.0.0", 17), ("7.0.1", 18), ("7.0.3", 19), ("8.0.0", 20), ("8.0.2", 21), ("8.0.3", 21), ("9.9.9", None), ("", None)],
)
def test_esxi_max_hardware_version(esxi, expected):
    from components import vsphere

    assert vsphere.max_hardware_version(esxi) == expected
