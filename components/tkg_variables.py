"""Rendering of the flat TKG cluster configuration (the file ``tanzu cluster create -f`` reads).

The password is not part of the rendered variables: it is added only to the file handed to the CLI.
"""

from __future__ import annotations

import base64
from typing import Any

import yaml

from components.config import SiteConfig
from components.gpu_profile import GpuProfile

Variables = dict[str, str | int | bool]


def custom_vmx_keys(profile: GpuProfile) -> dict[str, str]:
    """Return the VMX keys a GPU worker needs: the 64-bit MMIO window, and P2P keys for 2+ GPUs."""
    keys: dict[str, str] = {}
    if profile.needs_64bit_mmio and profile.mmio_size_gb is not None:
        keys["pciPassthru.use64bitMMIO"] = "TRUE"
        keys["pciPassthru.64bitMMIOSizeGB"] = str(profile.mmio_size_gb)

    if len(profile.worker_pairs) >= 2:
        keys["pciPassthru.allowP2P"] = "TRUE"
        keys["pciPassthru.RelaxACSforP2P"] = "TRUE"

    return keys


def rollout_strategy(site: SiteConfig, profile: GpuProfile) -> str:
    """Choose the worker rollout: RollingUpdate needs a spare GPU set for the surge VM, else OnDelete."""
    if site.cluster.rollout_strategy is not None:
        return site.cluster.rollout_strategy

    return "RollingUpdate" if profile.spare_worker_slots >= 1 else "OnDelete"


def render_variables(site: SiteConfig, profile: GpuProfile) -> Variables:
    """Render every TKG variable of the workload cluster except the vCenter password."""
    cluster = site.cluster
    vcenter = site.vcenter
    variables: Variables = {
        "CLUSTER_NAME": cluster.name,
        "CLUSTER_PLAN": cluster.plan,
        "NAMESPACE": cluster.namespace,
        "INFRASTRUCTURE_PROVIDER": "vsphere",
        "VSPHERE_SERVER": vcenter.server,
        "VSPHERE_USERNAME": vcenter.username,
        "VSPHERE_DATACENTER": vcenter.datacenter,
        "VSPHERE_DATASTORE": vcenter.datastore,
        "VSPHERE_NETWORK": vcenter.network,
        "VSPHERE_RESOURCE_POOL": vcenter.resource_pool,
        "VSPHERE_FOLDER": vcenter.folder,
        "VSPHERE_TEMPLATE": vcenter.template,
        "VSPHERE_SSH_AUTHORIZED_KEY": cluster.ssh_authorized_key,
        "OS_NAME": cluster.os_name,
        "OS_VERSION": cluster.os_version,
        "OS_ARCH": cluster.os_arch,
        "WORKER_MACHINE_COUNT": cluster.worker_count,
        "VSPHERE_WORKER_NUM_CPUS": cluster.worker_cpus,
        "VSPHERE_WORKER_MEM_MIB": cluster.worker_memory_mib,
        "VSPHERE_WORKER_DISK_GIB": cluster.worker_disk_gib,
        "VSPHERE_WORKER_PCI_DEVICES": profile.pci_devices_variable(),
        "VSPHERE_WORKER_HARDWARE_VERSION": cluster.hardware_version,
        "WORKER_ROLLOUT_STRATEGY": rollout_strategy(site, profile),
    }
    if vcenter.thumbprint:
        variables["VSPHERE_TLS_THUMBPRINT"] = vcenter.thumbprint
    if vcenter.insecure:
        variables["VSPHERE_INSECURE"] = True
    if cluster.control_plane_endpoint:
        variables["VSPHERE_CONTROL_PLANE_ENDPOINT"] = cluster.control_plane_endpoint
    if cluster.avi_control_plane_ha:
        variables["AVI_CONTROL_PLANE_HA_PROVIDER"] = True

    vmx_keys = custom_vmx_keys(profile)
    if vmx_keys:
        variables["VSPHERE_WORKER_CUSTOM_VMX_KEYS"] = ",".join(f"{key}={value}" for key, value in vmx_keys.items())

    # TKG's template tests only truthiness, so the flag is a real boolean and is left out when false.
    if profile.ignore_allow_list:
        variables["VSPHERE_IGNORE_PCI_DEVICES_ALLOW_LIST"] = True

    if site.registry is not None:
        variables["TKG_CUSTOM_IMAGE_REPOSITORY"] = site.registry.repository
        variables["TKG_CUSTOM_IMAGE_REPOSITORY_SKIP_TLS_VERIFY"] = site.registry.skip_tls_verify
        if site.registry.ca_certificate:
            variables["TKG_CUSTOM_IMAGE_REPOSITORY_CA_CERTIFICATE"] = site.registry.ca_certificate

    # TKG 2.x creates class-based clusters; a plan-based one must be asked for explicitly.
    if not cluster.class_based:
        variables["ALLOW_LEGACY_CLUSTER"] = True
    if cluster.pod_security_standard_enforce:
        variables["POD_SECURITY_STANDARD_ENFORCE"] = cluster.pod_security_standard_enforce

    # Plan-based clusters render their MachineHealthChecks from these; class-based ones get the same timeouts
    # through the Cluster topology override (components/mhc_topology.py) and ignore them.
    for key, value in site.edge_timeouts().items():
        variables[key.upper()] = value

    return variables


def render_config_file(variables: Variables, password: str) -> str:
    """Render the YAML file for ``tanzu cluster create -f``, with the password in TKG's encoded form."""
    encoded = base64.b64encode(password.encode()).decode()
    document: dict[str, Any] = {key: _integral(value) for key, value in variables.items()}
    document["VSPHERE_PASSWORD"] = f"<encoded:{encoded}>"

    return yaml.safe_dump(document, sort_keys=True, default_flow_style=False)


def _integral(value: Any) -> Any:
    """Turn 2.0 back into 2: Pulumi returns every number from the state as a float, and TKG parses integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)

    return value


def render_golden(variables: Variables) -> str:
    """Render the variables without the password, sorted, for golden files and previews."""
    return yaml.safe_dump(dict(variables), sort_keys=True, default_flow_style=False)
