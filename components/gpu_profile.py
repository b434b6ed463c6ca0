"""GPU profile of a site: which host devices the workers use, and the VM settings those GPUs need."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Mapping

from components import gpu_catalog, vsphere
from components.config import ConfigError, SiteConfig
from components.i18n import _


@dataclasses.dataclass(frozen=True)
class GpuProfile:
    """What one GPU worker VM carries, and which passthrough devices of the site back it."""

    worker_pairs: tuple[tuple[int, int], ...]
    """Vendor:device pair of each GPU in one worker VM, unsigned."""
    gpu_memory_gb: tuple[int | None, ...]
    """Memory of each GPU in ``worker_pairs``; None for a device missing from the catalogue."""
    site_devices: Mapping[str, tuple[str, ...]]
    """PCI addresses of the matching GPUs, by ESXi host name."""
    needs_64bit_mmio: bool
    mmio_size_gb: int | None
    required_mmio_size_gb: int | None
    """Computed minimum window; None when the GPU needs no 64-bit MMIO or its memory is unknown."""
    gpus_needed: int
    gpus_available: int

    @property
    def ignore_allow_list(self) -> bool:
        return any(not gpu_catalog.is_tkg_allow_listed(*pair) for pair in self.worker_pairs)

    @property
    def spare_gpus(self) -> int:
        return self.gpus_available - self.gpus_needed

    def pci_devices_variable(self) -> str:
        return ",".join(gpu_catalog.format_pci_pair(*pair) for pair in self.worker_pairs)


def build_profile(site: SiteConfig, hosts: Mapping[str, vsphere.HostState]) -> GpuProfile:
    """Match the configured GPU selection against the devices found on the site's hosts.

    Raises ConfigError when a host is missing or the hosts do not have enough matching GPUs.
    """
    worker_pairs = tuple(site.gpu.worker_pairs())
    wanted = set(worker_pairs)

    missing = [name for name in site.hosts if name not in hosts]
    if missing:
        known = ", ".join(sorted(hosts)) or _("none")
        raise ConfigError(
            _("tkg-gpu:hosts: ESXi host {hosts} not found in vCenter; hosts found: {known}").format(
                hosts=", ".join(missing), known=known
            )
        )

    site_devices = {}
    available: collections.Counter[tuple[int, int]] = collections.Counter()
    for name in site.hosts:
        matching = [
            device
            for device in hosts[name].devices
            if (device.vendor_id, device.device_id) in wanted and device.capable
        ]
        site_devices[name] = tuple(device.pci_address for device in matching)
        available.update((device.vendor_id, device.device_id) for device in matching)

    needed = collections.Counter(worker_pairs)
    for pair in needed:
        needed[pair] *= site.cluster.worker_count

    _check_capacity(site, needed, available)

    memory = tuple(_memory_gb(site, pair) for pair in worker_pairs)
    needs_mmio = any(_needs_64bit_mmio(pair) for pair in worker_pairs)
    required = None
    if needs_mmio and all(value is not None for value in memory):
        required = gpu_catalog.mmio_size_gb(max(memory), len(worker_pairs))  # type: ignore[type-var]

    mmio = site.cluster.mmio_size_gb or required
    _check_mmio(site, needs_mmio, mmio, required)

    return GpuProfile(
        worker_pairs=worker_pairs,
        gpu_memory_gb=memory,
        site_devices=site_devices,
        needs_64bit_mmio=needs_mmio,
        mmio_size_gb=mmio if needs_mmio else site.cluster.mmio_size_gb,
        required_mmio_size_gb=required,
        gpus_needed=sum(needed.values()),
        gpus_available=sum(available.values()),
    )


def _check_capacity(site: SiteConfig, needed: Mapping[tuple[int, int], int], available: Mapping[tuple[int, int], int]) -> None:
    problems = []
    for pair, count in needed.items():
        if available.get(pair, 0) < count:
            problems.append(
                _("{needed} x {pair} needed (cluster.workerCount {workers} x {per_worker} per worker), {available} passthrough-capable on hosts {hosts}").format(
                    needed=count,
                    pair=gpu_catalog.format_pci_pair(*pair),
                    workers=site.cluster.worker_count,
                    per_worker=count // site.cluster.worker_count,
                    available=available.get(pair, 0),
                    hosts=", ".join(site.hosts),
                )
            )

    if problems:
        raise ConfigError(
            _("tkg-gpu:gpu: the site's hosts do not have enough matching GPUs: {problems}; lower cluster.workerCount or gpu.perWorker, or add hosts").format(
                problems="; ".join(problems)
            )
        )


def _check_mmio(site: SiteConfig, needs_mmio: bool, mmio: int | None, required: int | None) -> None:
    if needs_mmio and mmio is None:
        raise ConfigError(
            _("tkg-gpu:gpu.memoryGb: missing for a GPU that is not in the catalogue; set it (for example 48) or set cluster.mmioSizeGb")
        )

    if required is not None and mmio is not None and mmio < required:
        raise ConfigError(
            _("tkg-gpu:cluster.mmioSizeGb: {value} GB is smaller than the {required} GB the worker's GPUs need; remove the setting or raise it to {required}").format(
                value=mmio, required=required
            )
        )


def _memory_gb(site: SiteConfig, pair: tuple[int, int]) -> int | None:
    model = gpu_catalog.model_for_device(*pair)
    if model is not None:
        return model.memory_gb

    return site.gpu.memory_gb


def _needs_64bit_mmio(pair: tuple[int, int]) -> bool:
    model = gpu_catalog.model_for_device(*pair)

    return model.needs_64bit_mmio if model is not None else True
