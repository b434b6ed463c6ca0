"""Policy rules as pure functions over the inputs of the ``ClusterConfig`` resource.

Each rule returns a list of violation messages (empty when compliant), so the rules can be unit-tested
without the policy runtime and reused by the pack in ``__main__.py``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from components.cluster_config import RESOURCE_TYPE
from components.i18n import _

CLUSTER_CONFIG_TYPE = RESOURCE_TYPE

# Dynamic DirectPath I/O, which TKG uses for GPU workers, needs hardware version 17 (ESXi 7.0) or later.
MIN_PASSTHROUGH_HARDWARE_VERSION = 17

_HARDWARE_VERSION = re.compile(r"^vmx-(\d+)$")


def _worker(props: Mapping[str, Any]) -> Mapping[str, Any]:
    return props.get("worker") or {}


def _pci_pairs(props: Mapping[str, Any]) -> list[str]:
    return [str(item) for item in _worker(props).get("pci_devices_hex") or []]


def one_gpu_type_per_vm(props: Mapping[str, Any]) -> list[str]:
    """A worker VM must carry one vendor:device pair only: the driver and TKG assume identical GPUs."""
    pairs = _pci_pairs(props)
    distinct = sorted(set(pairs))
    if len(distinct) <= 1:
        return []

    return [
        _("Cluster {cluster}: VSPHERE_WORKER_PCI_DEVICES mixes {count} GPU types in one worker VM ({pairs}). Use one vendor:device pair per VM, and a separate node pool for each GPU type.").format(
            cluster=props.get("cluster_name"), count=len(distinct), pairs=", ".join(distinct)
        )
    ]


def hardware_version_for_pci(props: Mapping[str, Any]) -> list[str]:
    """Wherever PCI devices are set, the hardware version must be set explicitly and be vmx-17 or later."""
    if not _pci_pairs(props):
        return []

    cluster = props.get("cluster_name")
    variables = props.get("variables") or {}
    version = variables.get("VSPHERE_WORKER_HARDWARE_VERSION")
    if not version:
        return [
            _("Cluster {cluster}: VSPHERE_WORKER_PCI_DEVICES is set but VSPHERE_WORKER_HARDWARE_VERSION is not; class-based clusters then default to vmx-15, which cannot take the GPUs. Set tkg-gpu:cluster.hardwareVersion to vmx-17 or later.").format(
                cluster=cluster
            )
        ]

    match = _HARDWARE_VERSION.match(str(version))
    if match is None or int(match.group(1)) < MIN_PASSTHROUGH_HARDWARE_VERSION:
        return [
            _("Cluster {cluster}: VSPHERE_WORKER_HARDWARE_VERSION is {version}, but GPU passthrough (Dynamic DirectPath I/O) needs vmx-17 or later. Set tkg-gpu:cluster.hardwareVersion to vmx-17 or later.").format(
                cluster=cluster, version=version
            )
        ]

    return []
