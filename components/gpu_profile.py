"""GPU profile of a site: which host devices the workers use, and the VM settings those GPUs need."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Mapping
from typing import Any

from components import gpu_catalog, vsphere
from components.config import ConfigError, SiteConfig
from components.i18n import _


@dataclasses.dataclass(frozen=True)
class GpuProfile:
    """GPU set of one worker VM, and the site's passthrough devices that back such VMs."""

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
    worker_slots: int
    """How many worker VMs the site's GPUs can back at once, counted per host: a VM's GPUs share its host."""
    workers: int

    @property
    def ignore_allow_list(self) -> bool:
        return any(not gpu_catalog.is_tkg_allow_listed(*pair) for pair in self.worker_pairs)

    @property
    def spare_worker_slots(self) -> int:
        """GPU sets left for a surge VM during a rolling update."""
        return self.worker_slots - self.workers

    def pci_devices_variable(self) -> str:
        return ",".join(gpu_catalog.format_pci_pair(*pair) for pair in self.worker_pairs)


def build_profile(site: SiteConfig, hosts: Mapping[str, vsphere.HostState]) -> GpuProfile:
    """Match the configured GPU selection against the devices found on the site's hosts.

    Raises ConfigError when a host is missing or outside the compute cluster, or when the hosts'
    GPUs and memory cannot back every worker VM.
    """
    missing = [name for name in site.hosts if name not in hosts]
    if missing:
        known = ", ".join(sorted(hosts)) or _("none")
        raise ConfigError(
            _("tkg-gpu:hosts: ESXi host {hosts} not found in vCenter; hosts found: {known}").format(
                hosts=", ".join(missing), known=known
            )
        )

    outside = [
        f"{name} ({hosts[name].compute_resource})"
        for name in site.hosts
        if hosts[name].compute_resource != site.vcenter.compute_cluster
    ]
    if outside:
        raise ConfigError(
            _("tkg-gpu:hosts: ESXi host {hosts} is not in cluster {cluster} (tkg-gpu:vcenter.computeCluster); list only that cluster's hosts or correct computeCluster").format(
                hosts=", ".join(outside), cluster=site.vcenter.compute_cluster
            )
        )

    worker_pairs = _resolve_worker_pairs(site, hosts)
    per_vm = collections.Counter(worker_pairs)

    site_devices = {}
    slots_by_host = {}
    for name in site.hosts:
        matching = [
            device
            for device in hosts[name].devices
            if (device.vendor_id, device.device_id) in per_vm and device.capable
        ]
        site_devices[name] = tuple(device.pci_address for device in matching)
        on_host = collections.Counter((device.vendor_id, device.device_id) for device in matching)
        gpu_slots = min(on_host[pair] // count for pair, count in per_vm.items())
        # A passthrough VM reserves all its memory, so the host's memory bounds its worker VMs too.
        memory_slots = hosts[name].memory_bytes // (site.cluster.worker_memory_mib * MIB)
        slots_by_host[name] = min(gpu_slots, memory_slots)

    _check_worker_memory(site, hosts)

    _check_capacity(site, worker_pairs, slots_by_host)

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
        worker_slots=sum(slots_by_host.values()),
        workers=site.cluster.worker_count,
    )


MIB = 1024 * 1024


def _check_worker_memory(site: SiteConfig, hosts: Mapping[str, vsphere.HostState]) -> None:
    largest = max(hosts[name].memory_bytes for name in site.hosts) // MIB
    if site.cluster.worker_memory_mib > largest:
        raise ConfigError(
            _("tkg-gpu:cluster.workerMemoryMib: {value} MiB is more than the largest host's memory ({largest} MiB); a passthrough VM reserves all its memory, so lower the setting").format(
                value=site.cluster.worker_memory_mib, largest=largest
            )
        )


def site_facts(site: SiteConfig, hosts: Mapping[str, vsphere.HostState], template: vsphere.TemplateState) -> dict[str, Any]:
    """Collect what policies need to know about the site: ESXi versions and the worker template.

    ``host_max_hardware_versions`` is None for a host whose ESXi release is missing from the table.
    """
    versions = {name: hosts[name].esxi_version for name in site.hosts}
    limits = {name: vsphere.max_hardware_version(version) for name, version in versions.items()}
    known = [limit for limit in limits.values() if limit is not None]

    return {
        "esxi_versions": versions,
        "host_max_hardware_versions": limits,
        "max_hardware_version": min(known) if known else None,
        "template": dataclasses.asdict(template),
        "registry": site.registry.repository if site.registry else None,
    }


def _resolve_worker_pairs(site: SiteConfig, hosts: Mapping[str, vsphere.HostState]) -> tuple[tuple[int, int], ...]:
    """Return the pairs of one worker VM; a catalogue model takes the device ID its hosts report most.

    Some products carry two device IDs (the A100 PCIe 40GB reports 0x20B1 or 0x20F1).
    """
    if site.gpu.model is None:
        return tuple(site.gpu.worker_pairs())

    model = gpu_catalog.find_model(site.gpu.model)
    assert model is not None, "validated by GpuSettings"
    found = collections.Counter(
        device.device_id
        for name in site.hosts
        for device in hosts[name].devices
        if device.vendor_id == gpu_catalog.NVIDIA_VENDOR_ID and device.capable
    )
    device_id = max(model.device_ids, key=lambda candidate: found[candidate])

    return ((gpu_catalog.NVIDIA_VENDOR_ID, device_id),) * site.gpu.per_worker


def _check_capacity(site: SiteConfig, worker_pairs: tuple[tuple[int, int], ...], slots_by_host: Mapping[str, int]) -> None:
    """Fail unless the hosts can back every worker VM, counting each host on its own."""
    if sum(slots_by_host.values()) >= site.cluster.worker_count:
        return

    per_host = ", ".join(f"{name}: {slots}" for name, slots in slots_by_host.items())
    raise ConfigError(
        _("tkg-gpu:gpu: the site's hosts cannot back {workers} worker VMs with {gpus} x {pairs} each (worker VMs per host: {per_host}); lower cluster.workerCount or gpu.perWorker, or add hosts with matching passthrough-capable GPUs").format(
            workers=site.cluster.worker_count,
            gpus=len(worker_pairs),
            pairs=", ".join(sorted({gpu_catalog.format_pci_pair(*pair) for pair in worker_pairs})),
            per_host=per_host,
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
