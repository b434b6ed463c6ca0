"""tkg-gpu site stack: GPU passthrough on the site's hosts, then the TKG workload cluster."""

import pulumi

from components import config, gpu_profile, site, tkg_variables
from components.site_stack import declare_site
from components.vsphere import VSphereError

try:
    site_config = config.parse_site_config(site.read_raw_config())
    site.check_tanzu_cli(site_config)
    inventory = site.read_inventory(site_config)
    profile = gpu_profile.build_profile(site_config, inventory.hosts)
except (config.ConfigError, VSphereError) as error:
    raise pulumi.RunError(str(error)) from None

resources = declare_site(site_config, inventory, profile, site.connection_input(site_config))

pulumi.export("site", site_config.site.name)
pulumi.export("hosts", {name: host.devices for name, host in resources.hosts.items()})
pulumi.export("clusterName", resources.cluster.cluster_name)
pulumi.export("clusterStatus", resources.cluster.status)
pulumi.export("workerPciDevices", profile.pci_devices_variable())
pulumi.export("workerCount", site_config.cluster.worker_count)
pulumi.export("rolloutStrategy", tkg_variables.rollout_strategy(site_config, profile))
pulumi.export("mmioSizeGb", profile.mmio_size_gb)
