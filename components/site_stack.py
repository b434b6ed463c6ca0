"""The resource graph of a site stack: passthrough hosts first, then the workload cluster."""

from __future__ import annotations

import dataclasses
from typing import Any

import pulumi

from components import gpu_profile
from components.config import SiteConfig
from components.passthrough import GpuPassthroughHost
from components.site import SiteInventory
from components.workload_cluster import TanzuWorkloadCluster


@dataclasses.dataclass(frozen=True)
class SiteResources:
    hosts: dict[str, GpuPassthroughHost]
    cluster: TanzuWorkloadCluster


def declare_site(
    site: SiteConfig,
    inventory: SiteInventory,
    profile: gpu_profile.GpuProfile,
    connection: pulumi.Input[dict[str, Any]],
) -> SiteResources:
    """Declare one GpuPassthroughHost per ESXi host and the cluster that depends on all of them."""
    hosts = {
        name: GpuPassthroughHost(
            name, host=name, pci_addresses=list(profile.site_devices[name]), connection=connection
        )
        for name in site.hosts
    }
    passthrough = pulumi.Output.all(*[host.passthrough_states() for host in hosts.values()]).apply(
        lambda groups: [state for group in groups for state in group]
    )
    cluster = TanzuWorkloadCluster(
        site.cluster.name,
        site=site,
        profile=profile,
        facts=gpu_profile.site_facts(site, inventory.hosts, inventory.template),
        passthrough=passthrough,
        connection=connection,
        opts=pulumi.ResourceOptions(depends_on=list(hosts.values())),
    )

    return SiteResources(hosts=hosts, cluster=cluster)
