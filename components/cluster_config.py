"""The rendered TKG cluster configuration as a resource whose inputs policy packs can read.

Policies see the inputs of custom resources only, so every value a policy checks is an input here, as
structured data (device lists, hardware version, VMX keys) next to the flat TKG variables.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi import dynamic

from components import gpu_catalog
from components.i18n import _

PROVIDER_VERSION = "1"
RESOURCE_TYPE = "pulumi-python:dynamic/tkggpu:ClusterConfig"


class PassthroughNotActiveError(RuntimeError):
    """A worker GPU has passthrough enabled but not active, so a worker VM using it would not power on."""


def check_passthrough_active(devices: list[dict[str, Any]]) -> None:
    pending = [device for device in devices if not device.get("active")]
    if pending:
        listed = ", ".join(f"{device['host']} {device['pci_address']}" for device in pending)
        raise PassthroughNotActiveError(
            _("PCI passthrough is enabled but not active on: {devices}. The host needs a reboot before a GPU worker can use it: enter maintenance mode, reboot the host, then run pulumi up again.").format(
                devices=listed
            )
        )


class ClusterConfigProvider(dynamic.ResourceProvider):
    """Holds the rendered configuration; creating it checks that every worker GPU is passthrough-active."""

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        check_passthrough_active(props.get("passthrough") or [])

        return dynamic.CreateResult(f"{props['namespace']}/{props['cluster_name']}", dict(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        changed = [key for key in news if key != "__provider" and olds.get(key) != news.get(key)]
        replaces = [key for key in ("cluster_name", "namespace") if key in changed]

        return dynamic.DiffResult(changes=bool(changed), replaces=replaces or None)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        check_passthrough_active(news.get("passthrough") or [])

        return dynamic.UpdateResult(dict(news))


class ClusterConfig(dynamic.Resource, module="tkggpu", name="ClusterConfig"):
    """Rendered TKG variables of one workload cluster; the password is never among them."""

    cluster_name: pulumi.Output[str]
    namespace: pulumi.Output[str]
    variables: pulumi.Output[dict[str, Any]]

    def __init__(
        self,
        resource_name: str,
        *,
        cluster_name: str,
        namespace: str,
        site_kind: str,
        variables: dict[str, Any],
        explicit_edge_timeouts: list[str],
        worker: dict[str, Any],
        spare_worker_slots: int,
        site_facts: dict[str, Any],
        passthrough: pulumi.Input[list[dict[str, Any]]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "cluster_name": cluster_name,
            "namespace": namespace,
            "site_kind": site_kind,
            "variables": variables,
            # MachineHealthCheck timeout variables set in the stack; the others carry edge defaults or none.
            "explicit_edge_timeouts": explicit_edge_timeouts,
            "worker": worker,
            "ignore_pci_devices_allow_list": variables.get("VSPHERE_IGNORE_PCI_DEVICES_ALLOW_LIST") is True,
            "spare_worker_slots": spare_worker_slots,
            "site": site_facts,
            "passthrough": passthrough,
            "provider_version": PROVIDER_VERSION,
        }
        super().__init__(ClusterConfigProvider(), resource_name, props, opts)


def worker_spec(
    pairs: tuple[tuple[int, int], ...],
    variables: dict[str, Any],
    gpu_memory_gb: tuple[int | None, ...],
    required_mmio_size_gb: int | None,
    vmx_keys: dict[str, str],
    needs_64bit_mmio: bool,
) -> dict[str, Any]:
    """Build the structured worker description that policies check."""
    return {
        "pci_devices": [{"vendor_id": vendor, "device_id": device} for vendor, device in pairs],
        "pci_devices_hex": [gpu_catalog.format_pci_pair(vendor, device) for vendor, device in pairs],
        "hardware_version": variables.get("VSPHERE_WORKER_HARDWARE_VERSION"),
        "custom_vmx_keys": vmx_keys,
        "needs_64bit_mmio": needs_64bit_mmio,
        "gpu_memory_gb": list(gpu_memory_gb),
        "required_mmio_size_gb": required_mmio_size_gb,
        "rollout_strategy": variables.get("WORKER_ROLLOUT_STRATEGY"),
        "count": variables.get("WORKER_MACHINE_COUNT"),
    }
