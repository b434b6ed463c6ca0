"""NVIDIA data-centre GPU catalogue, PCI ID normalisation and 64-bit MMIO sizing.

Identity data comes from the PCI ID Repository (pci.ids 2026.08.22); memory sizes from NVIDIA product
briefs and datasheets. The MMIO rule is the one VMware published for passthrough GPUs: the window is
the smallest power of two that is at least twice the total GPU memory of the VM.
"""

from __future__ import annotations

import dataclasses
import re

NVIDIA_VENDOR_ID = 0x10DE

# The only vendor:device pair on TKG's built-in PCI allow-list (tanzu-framework v0.29.0,
# providers/infrastructure-vsphere/v1.5.3/ytt/overlay.yaml): the NVIDIA T4.
TKG_ALLOW_LISTED_DEVICES = frozenset({(NVIDIA_VENDOR_ID, 0x1EB8)})

_PCI_PAIR_PATTERN = re.compile(r"^\s*(0x[0-9a-fA-F]{1,4})\s*:\s*(0x[0-9a-fA-F]{1,4})\s*$")


@dataclasses.dataclass(frozen=True)
class GpuModel:
    """One GPU product as a VM receives it through PCI passthrough."""

    key: str
    """Catalogue key used in stack configuration, such as ``A100-PCIE-80GB``."""
    name: str
    """Product name as the PCI ID Repository lists it."""
    device_ids: tuple[int, ...]
    """PCI device IDs of this product under the NVIDIA vendor ID; some products have two."""
    generation: str
    form_factor: str
    memory_gb: int
    needs_64bit_mmio: bool = True
    """False only for GPUs whose BAR1 fits below 4 GB, which is the T4 alone in this catalogue."""


GPU_MODELS: tuple[GpuModel, ...] = (
    GpuModel("V100-PCIE-16GB", "GV100GL [Tesla V100 PCIe 16GB]", (0x1DB4,), "Volta", "PCIe", 16),
    GpuModel("V100-SXM2-16GB", "GV100GL [Tesla V100 SXM2 16GB]", (0x1DB1, 0x1DF5), "Volta", "SXM2", 16),
    GpuModel("V100-PCIE-32GB", "GV100GL [Tesla V100 PCIe 32GB]", (0x1DB6,), "Volta", "PCIe", 32),
    GpuModel("V100-SXM2-32GB", "GV100GL [Tesla V100 SXM2 32GB]", (0x1DB5,), "Volta", "SXM2", 32),
    GpuModel("V100S-PCIE-32GB", "GV100GL [Tesla V100S PCIe 32GB]", (0x1DF6,), "Volta", "PCIe", 32),
    GpuModel("T4", "TU104GL [Tesla T4]", (0x1EB8,), "Turing", "PCIe", 16, needs_64bit_mmio=False),
    GpuModel("A10", "GA102GL [A10]", (0x2236,), "Ampere", "PCIe", 24),
    GpuModel("A30", "GA100GL [A30 PCIe]", (0x20B7,), "Ampere", "PCIe", 24),
    GpuModel("A100-PCIE-40GB", "GA100 [A100 PCIe 40GB]", (0x20B1, 0x20F1), "Ampere", "PCIe", 40),
    GpuModel("A100-SXM4-40GB", "GA100 [A100 SXM4 40GB]", (0x20B0,), "Ampere", "SXM4", 40),
    GpuModel("A100-PCIE-80GB", "GA100 [A100 PCIe 80GB]", (0x20B5,), "Ampere", "PCIe", 80),
    GpuModel("A100-SXM4-80GB", "GA100 [A100 SXM4 80GB]", (0x20B2,), "Ampere", "SXM4", 80),
    GpuModel("L4", "AD104GL [L4]", (0x27B8,), "Ada Lovelace", "PCIe", 24),
    GpuModel("L40", "AD102GL [L40]", (0x26B5,), "Ada Lovelace", "PCIe", 48),
    GpuModel("L40S", "AD102GL [L40S]", (0x26B9,), "Ada Lovelace", "PCIe", 48),
    GpuModel("H100-PCIE", "GH100 [H100 PCIe]", (0x2331,), "Hopper", "PCIe", 80),
    GpuModel("H100-SXM5-80GB", "GH100 [H100 SXM5 80GB]", (0x2330,), "Hopper", "SXM5", 80),
    GpuModel("H100-NVL", "GH100 [H100L 94GB]", (0x2321,), "Hopper", "PCIe NVL", 94),
    GpuModel("H200-SXM", "GH100 [H200 SXM 141GB]", (0x2335,), "Hopper", "SXM", 141),
    GpuModel("H200-NVL", "GH100 [H200 NVL]", (0x233B,), "Hopper", "PCIe NVL", 141),
)

_MODELS_BY_KEY = {model.key.upper(): model for model in GPU_MODELS}
_MODELS_BY_DEVICE = {
    (NVIDIA_VENDOR_ID, device_id): model for model in GPU_MODELS for device_id in model.device_ids
}


def normalize_pci_id(value: int) -> int:
    """Convert a vSphere PCI ID, typed as a signed 16-bit number by the API, to its unsigned value."""
    if not -0x8000 <= value <= 0xFFFF:
        raise ValueError(f"PCI ID {value} is outside the 16-bit range")

    return value & 0xFFFF


def to_signed_pci_id(value: int) -> int:
    """Convert an unsigned 16-bit PCI ID to the signed form that vSphere API fields expect."""
    value = normalize_pci_id(value)

    return value - 0x10000 if value >= 0x8000 else value


def format_pci_id(value: int) -> str:
    """Format a PCI ID as TKG variables expect it: ``0x`` and four upper-case hex digits."""
    return f"0x{normalize_pci_id(value):04X}"


def format_pci_pair(vendor_id: int, device_id: int) -> str:
    return f"{format_pci_id(vendor_id)}:{format_pci_id(device_id)}"


def parse_pci_pair(text: str) -> tuple[int, int]:
    """Parse ``0xVVVV:0xDDDD`` (hex digits in any case) into unsigned vendor and device IDs.

    Raises ValueError when the text is not one such pair.
    """
    match = _PCI_PAIR_PATTERN.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a vendor:device pair of the form 0xVVVV:0xDDDD")

    return int(match.group(1), 16), int(match.group(2), 16)


def find_model(key: str) -> GpuModel | None:
    return _MODELS_BY_KEY.get(key.strip().upper())


def model_for_device(vendor_id: int, device_id: int) -> GpuModel | None:
    """Look up the catalogue entry of a device; unknown devices return None and are not an error."""
    return _MODELS_BY_DEVICE.get((normalize_pci_id(vendor_id), normalize_pci_id(device_id)))


def is_tkg_allow_listed(vendor_id: int, device_id: int) -> bool:
    return (normalize_pci_id(vendor_id), normalize_pci_id(device_id)) in TKG_ALLOW_LISTED_DEVICES


def mmio_size_gb(gpu_memory_gb: int, gpus_per_vm: int) -> int:
    """Compute ``pciPassthru.64bitMMIOSizeGB`` for a VM: the smallest power of two >= 2 x total GPU memory."""
    if gpu_memory_gb <= 0 or gpus_per_vm <= 0:
        raise ValueError("GPU memory and GPUs per VM must be positive")

    required = 2 * gpu_memory_gb * gpus_per_vm
    size = 1
    while size < required:
        size *= 2

    return size
