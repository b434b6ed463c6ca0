"""tkg-gpu: a site stack (GPU passthrough, the TKG workload cluster, the GPU Operator and its validation) or,
with ``tkg-gpu:role: management``, a management stack that tunes the management cluster for edge sites."""

import pulumi

from components import config, gpu_profile, management, site, tkg_variables
from components.site_stack import declare_site
from components.vsphere import VSphereError


def site_program(raw: dict) -> None:
    try:
        site_config = config.parse_site_config(raw)
        site.check_tanzu_cli(site_config)
        inventory = site.read_inventory(site_config)
        profile = gpu_profile.build_profile(site_config, inventory.hosts)
        resources = declare_site(site_config, inventory, profile, site.connection_input(site_config))
    except (config.ConfigError, VSphereError) as error:
        raise pulumi.RunError(str(error)) from None

    pulumi.export("site", site_config.site.name)
    pulumi.export("hosts", {name: host.devices for name, host in resources.hosts.items()})
    pulumi.export("clusterName", resources.cluster.cluster_name)
    pulumi.export("clusterStatus", resources.cluster.status)
    pulumi.export("workerPciDevices", profile.pci_devices_variable())
    pulumi.export("workerCount", site_config.cluster.worker_count)
    pulumi.export("rolloutStrategy", tkg_variables.rollout_strategy(site_config, profile))
    pulumi.export("mmioSizeGb", profile.mmio_size_gb)
    if resources.operator is not None:
        pulumi.export("gpuOperator", {
            "release": resources.operator.release_name,
            "namespace": resources.operator.namespace,
            "status": resources.operator.status,
            "chartVersion": resources.operator.chart_version,
        })
    if resources.validation is not None:
        pulumi.export("gpuValidation", resources.validation.result)


def management_program(raw: dict) -> None:
    try:
        outputs = management.declare_management(config.parse_management_config(raw))
    except config.ConfigError as error:
        raise pulumi.RunError(str(error)) from None

    for key, value in outputs.items():
        pulumi.export(key, value)


raw_config = site.read_raw_config()
if config.is_management(raw_config):
    management_program(raw_config)
else:
    site_program(raw_config)
