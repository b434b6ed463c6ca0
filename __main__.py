"""tkg-gpu site stack: GPU passthrough on the site's hosts, then the TKG workload cluster."""

import pulumi

from components import config, gpu_profile, site
from components.passthrough import GpuPassthroughHost
from components.vsphere import VSphereError
from components.workload_cluster import TanzuWorkloadCluster

try:
    site_config = config.parse_site_config(site.read_raw_config())
    inventory = site.read_inventory(site_config)
    profile = gpu_profile.build_profile(site_config, inventory)
except (config.ConfigError, VSphereError) as error:
    raise pulumi.RunError(str(error)) from None

connection = site.connection_input(site_config)

hosts = [
    GpuPassthroughHost(
        host_name,
        host=host_name,
        pci_addresses=list(profile.site_devices[host_name]),
        connection=connection,
    )
    for host_name in site_config.hosts
]

passthrough = pulumi.Output.all(*[host.passthrough_states() for host in hosts]).apply(
    lambda groups: [state for group in groups for state in group]
)

cluster = TanzuWorkloadCluster(
    site_config.cluster.name,
    site=site_config,
    profile=profile,
    passthrough=passthrough,
    connection=connection,
    opts=pulumi.ResourceOptions(depends_on=hosts),
)

pulumi.export("site", site_config.site.name)
pulumi.export("hosts", {host_name: host.devices for host, host_name in zip(hosts, site_config.hosts)})
pulumi.export("clusterName", cluster.cluster_name)
pulumi.export("clusterStatus", cluster.status)
pulumi.export("workerPciDevices", profile.pci_devices_variable())
