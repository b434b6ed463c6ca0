"""TanzuWorkloadCluster: rendered configuration, then the cluster created through the tanzu CLI."""

from __future__ import annotations

from typing import Any

import pulumi

from components import tkg_variables
from components.cluster_config import ClusterConfig, worker_spec
from components.config import SiteConfig
from components.gpu_profile import GpuProfile
from components.tanzu_cluster import TanzuCluster


class TanzuWorkloadCluster(pulumi.ComponentResource):
    """A GPU workload cluster: its TKG variables as a policy-visible resource, and the cluster itself."""

    cluster_name: pulumi.Output[str]
    status: pulumi.Output[str]
    variables: pulumi.Output[dict[str, Any]]
    kubeconfig: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        site: SiteConfig,
        profile: GpuProfile,
        facts: dict[str, Any],
        passthrough: pulumi.Input[list[dict[str, Any]]],
        connection: pulumi.Input[dict[str, Any]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("tkg-gpu:index:TanzuWorkloadCluster", name, None, opts)

        variables = tkg_variables.render_variables(site, profile)
        worker = worker_spec(
            profile.worker_pairs,
            variables,
            profile.gpu_memory_gb,
            profile.required_mmio_size_gb,
            tkg_variables.custom_vmx_keys(profile),
            profile.needs_64bit_mmio,
        )
        self.config = ClusterConfig(
            f"{name}-config",
            cluster_name=site.cluster.name,
            namespace=site.cluster.namespace,
            site_kind=site.site.kind,
            variables=variables,
            explicit_edge_timeouts=explicit_edge_timeouts(site),
            worker=worker,
            spare_worker_slots=profile.spare_worker_slots,
            site_facts=facts,
            passthrough=passthrough,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.cluster = TanzuCluster(
            f"{name}-cluster",
            cluster_name=site.cluster.name,
            namespace=site.cluster.namespace,
            variables=self.config.variables,
            connection=connection,
            tanzu_cli=site.tanzu.cli,
            create_timeout=site.tanzu.create_timeout,
            delete_timeout=site.tanzu.delete_timeout,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.config]),
        )

        self.cluster_name = self.cluster.cluster_name
        self.kubeconfig = pulumi.Output.secret(self.cluster.kubeconfig)
        self.status = self.cluster.status
        self.variables = self.config.variables
        self.register_outputs({"cluster_name": self.cluster_name, "status": self.status})


def explicit_edge_timeouts(site: SiteConfig) -> list[str]:
    """Return the TKG variables of the MachineHealthCheck timeouts that the stack sets, not the edge defaults."""
    return sorted(key.upper() for key in site.edge.model_dump(exclude_unset=True, exclude_none=True))
