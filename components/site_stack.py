"""The resource graph of a site stack: passthrough hosts, the workload cluster, then what runs on it."""

from __future__ import annotations

import dataclasses
from typing import Any

import pulumi
import pulumi_kubernetes as kubernetes

from components import gpu_driver, gpu_profile
from components.config import SiteConfig
from components.gpu_operator import GpuOperator
from components.gpu_validation import GpuValidation
from components.i18n import _
from components.mhc_topology import ClusterTopologyOverride, ManagementReference
from components.passthrough import GpuPassthroughHost
from components.site import SiteInventory
from components.workload_cluster import TanzuWorkloadCluster


@dataclasses.dataclass(frozen=True)
class SiteResources:
    hosts: dict[str, GpuPassthroughHost]
    cluster: TanzuWorkloadCluster
    operator: GpuOperator | None
    validation: GpuValidation | None
    topology: ClusterTopologyOverride | None


def declare_site(
    site: SiteConfig,
    inventory: SiteInventory,
    profile: gpu_profile.GpuProfile,
    connection: pulumi.Input[dict[str, Any]],
) -> SiteResources:
    """Declare the passthrough hosts, the cluster that depends on all of them, and the GPU software on it."""
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
    operator, validation = _declare_gpu_software(site, profile, cluster)

    return SiteResources(
        hosts=hosts,
        cluster=cluster,
        operator=operator,
        validation=validation,
        topology=_declare_topology_override(site, profile, cluster),
    )


def _declare_topology_override(
    site: SiteConfig, profile: gpu_profile.GpuProfile, cluster: TanzuWorkloadCluster
) -> ClusterTopologyOverride | None:
    """Set the MachineHealthCheck timeouts and rollout strategy in a class-based cluster's topology.

    The Cluster object lives in the management cluster, whose kubeconfig comes from the management stack.
    """
    if not site.cluster.class_based:
        return None
    if not site.management_stack:
        pulumi.log.warn(
            _("tkg-gpu:managementStack is not set, so the class-based cluster {name} keeps the MachineHealthCheck and rollout strategy of its ClusterClass; set managementStack to the management stack, such as organization/tkg-gpu/mgmt").format(
                name=site.cluster.name
            )
        )
        return None

    return ClusterTopologyOverride(
        f"{site.cluster.name}-topology",
        site=site,
        profile=profile,
        management_reference=ManagementReference(site),
        cluster_name=cluster.cluster_name,
        opts=pulumi.ResourceOptions(depends_on=[cluster]),
    )


def _declare_gpu_software(
    site: SiteConfig, profile: gpu_profile.GpuProfile, cluster: TanzuWorkloadCluster
) -> tuple[GpuOperator | None, GpuValidation | None]:
    """Declare the GPU Operator, then the CUDA validation, through the workload cluster's admin kubeconfig."""
    if not site.gpu_operator.enabled and not site.validation.enabled:
        return None, None

    name = site.cluster.name
    workload = kubernetes.Provider(
        f"{name}-workload",
        kubeconfig=cluster.kubeconfig,
        opts=pulumi.ResourceOptions(depends_on=[cluster]),
    )
    operator = None
    if site.gpu_operator.enabled:
        operator = GpuOperator(
            f"{name}-gpu-operator",
            site=site,
            generations=gpu_driver.site_generations(profile.worker_pairs),
            provider=workload,
            opts=pulumi.ResourceOptions(depends_on=[cluster]),
        )
    validation = None
    if site.validation.enabled:
        validation = GpuValidation(
            f"{name}-gpu-validation",
            settings=site.validation,
            registry=site.registry,
            expected_gpus=site.cluster.worker_count * len(profile.worker_pairs),
            kubeconfig=cluster.kubeconfig,
            provider=workload,
            opts=pulumi.ResourceOptions(depends_on=[operator] if operator else [cluster]),
        )

    return operator, validation
