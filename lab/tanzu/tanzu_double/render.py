"""Class-based Cluster objects rendered from a ClusterSpec.

The layout follows TKG's class-based vSphere templates at tanzu-framework v0.29.0
(providers/infrastructure-vsphere/v1.5.3/yttcc/overlay.yaml and
providers/yttcc/lib/config_variable_association.star): a `Cluster` with `spec.topology`,
ClusterClass `tkg-vsphere-default-v1.0.0`, and flat variables mapped to topology variables
such as `vcenter`, `worker`, `controlPlane` and `pci` (PCI IDs in decimal). Variables that only
matter to other parts of TKG are left out, so the output is not byte-identical to TKG's.
"""

from __future__ import annotations

import io

import yaml

from .endpoint import Connection
from .validation import ClusterSpec, MachineSpec, PciDevice, VSphereTarget

CLUSTER_CLASS = "tkg-vsphere-default-v1.0.0"
WORKER_CLASS = "tkg-worker"
RESOLVE_OS_IMAGE = "run.tanzu.vmware.com/resolve-os-image"


def _machine_variable(machine: MachineSpec) -> dict[str, object]:
    value: dict[str, object] = {
        "diskGiB": machine.disk_gib,
        "memoryMiB": machine.memory_mib,
        "numCPUs": machine.num_cpus,
    }
    if machine.custom_vmx_keys:
        value["customVMXKeys"] = dict(machine.custom_vmx_keys)
    return value


def _pci_role(machine: MachineSpec) -> dict[str, object]:
    value: dict[str, object] = {}
    if machine.pci_devices:
        value["devices"] = [
            {"deviceId": device.device_id, "vendorId": device.vendor_id} for device in machine.pci_devices
        ]
    if machine.hardware_version:
        value["hardwareVersion"] = machine.hardware_version
    return value


def machine_spec_from_variables(machine: dict, pci_role: dict | None) -> MachineSpec:
    """Rebuild a MachineSpec from a `machine` value and a `pci` role value of the topology.

    This inverts _machine_variable and _pci_role, so VMs added after create get the same
    size, custom VMX keys, PCI devices and hardware version as the VMs made at create.
    """
    pci_role = pci_role or {}
    return MachineSpec(
        num_cpus=int(machine["numCPUs"]),
        memory_mib=int(machine["memoryMiB"]),
        disk_gib=int(machine["diskGiB"]),
        custom_vmx_keys={str(key): str(value) for key, value in (machine.get("customVMXKeys") or {}).items()},
        pci_devices=[
            PciDevice(int(device["vendorId"]), int(device["deviceId"])) for device in pci_role.get("devices") or []
        ],
        hardware_version=pci_role.get("hardwareVersion"),
    )


def vsphere_target_from_variable(vcenter: dict, connection: Connection) -> VSphereTarget:
    """Rebuild the placement of new VMs from a `vcenter` topology value and the stored connection."""
    return VSphereTarget(
        server=connection.server,
        insecure=connection.insecure,
        thumbprint=connection.thumbprint,
        datacenter=str(vcenter["datacenter"]),
        folder=str(vcenter["folder"]),
        resource_pool=str(vcenter["resourcePool"]),
        datastore=vcenter.get("datastore"),
        storage_policy_id=vcenter.get("storagePolicyID"),
        network=str(vcenter["network"]),
        template=vcenter.get("template"),
        clone_mode=str(vcenter.get("cloneMode") or "fullClone"),
    )


def topology_variables(spec: ClusterSpec) -> list[dict[str, object]]:
    """Cluster-wide `spec.topology.variables` as a list of {name, value}."""
    vcenter: dict[str, object] = {
        "cloneMode": spec.vsphere.clone_mode,
        "datacenter": spec.vsphere.datacenter,
        "folder": spec.vsphere.folder,
        "network": spec.vsphere.network,
        "resourcePool": spec.vsphere.resource_pool,
        "server": spec.vsphere.server,
    }
    if spec.vsphere.datastore:
        vcenter["datastore"] = spec.vsphere.datastore
    if spec.vsphere.storage_policy_id:
        vcenter["storagePolicyID"] = spec.vsphere.storage_policy_id
    if spec.vsphere.template:
        vcenter["template"] = spec.vsphere.template
    if spec.vsphere.thumbprint:
        vcenter["tlsThumbprint"] = spec.vsphere.thumbprint

    variables: list[dict[str, object]] = [
        {"name": "cni", "value": spec.cni},
        {"name": "controlPlaneCertificateRotation", "value": {"activate": True, "daysBefore": 90}},
        {"name": "auditLogging", "value": {"enabled": False}},
        {"name": "podSecurityStandard", "value": {"audit": "baseline", "deactivated": False, "warn": "baseline"}},
        {"name": "aviAPIServerHAProvider", "value": spec.avi_control_plane_ha},
        {"name": "vcenter", "value": vcenter},
        {"name": "user", "value": {"sshAuthorizedKeys": [spec.ssh_authorized_key]}},
        {"name": "controlPlane", "value": {"machine": _machine_variable(spec.control_plane)}},
        {"name": "worker", "value": {"count": spec.worker_count, "machine": _machine_variable(spec.worker)}},
    ]
    if spec.control_plane_endpoint:
        variables.insert(5, {"name": "apiServerEndpoint", "value": spec.control_plane_endpoint})
    if spec.ntp_servers:
        variables.append({"name": "ntpServers", "value": list(spec.ntp_servers)})

    pci: dict[str, object] = {}
    control_plane_pci = _pci_role(spec.control_plane)
    if control_plane_pci:
        pci["controlPlane"] = control_plane_pci
    worker_pci = _pci_role(spec.worker)
    if worker_pci:
        pci["worker"] = worker_pci
    if pci:
        variables.append({"name": "pci", "value": pci})
    return variables


def build_topology(spec: ClusterSpec) -> dict[str, object]:
    """`spec.topology` of the class-based Cluster."""
    os_annotation = {RESOLVE_OS_IMAGE: f"image-type=ova,os-name={spec.os_name}"}
    deployments: list[dict[str, object]] = []
    for pool in spec.pools:
        deployment: dict[str, object] = {
            "class": WORKER_CLASS,
            "metadata": {"annotations": dict(os_annotation)},
            "name": pool.name,
            "replicas": pool.replicas,
        }
        if pool.failure_domain:
            deployment["failureDomain"] = pool.failure_domain
        deployments.append(deployment)
    return {
        "class": CLUSTER_CLASS,
        "controlPlane": {"metadata": {"annotations": dict(os_annotation)}, "replicas": spec.control_plane_count},
        "variables": topology_variables(spec),
        "version": spec.topology_version,
        "workers": {"machineDeployments": deployments},
    }


def cluster_annotations(spec: ClusterSpec) -> dict[str, str]:
    annotations = {
        "osInfo": f"{spec.os_name},{spec.os_version},{spec.os_arch}",
        "tkg/plan": spec.plan,
    }
    if spec.control_plane_endpoint:
        annotations["tkg.tanzu.vmware.com/cluster-controlplane-endpoint"] = spec.control_plane_endpoint
    return annotations


def cluster_network(spec: ClusterSpec) -> dict[str, object]:
    """`spec.clusterNetwork` of the Cluster: pod and service CIDRs, each possibly comma-separated."""
    return {
        "pods": {"cidrBlocks": spec.cluster_cidr.split(",")},
        "services": {"cidrBlocks": spec.service_cidr.split(",")},
    }


def cluster_object(spec: ClusterSpec) -> dict[str, object]:
    return {
        "apiVersion": "cluster.x-k8s.io/v1beta1",
        "kind": "Cluster",
        "metadata": {
            "annotations": cluster_annotations(spec),
            "labels": {"tkg.tanzu.vmware.com/cluster-name": spec.name},
            "name": spec.name,
            "namespace": spec.namespace,
        },
        "spec": {
            "clusterNetwork": cluster_network(spec),
            "topology": build_topology(spec),
        },
    }


def _provider_ref(api_group: str, kind: str, name: str) -> dict[str, object]:
    return {"valuesFrom": {"providerRef": {"apiGroup": api_group, "kind": kind, "name": name}}}


def dry_run_documents(spec: ClusterSpec) -> list[dict[str, object]]:
    """Return the objects that `create --dry-run` prints, except the vSphere credentials Secret."""
    metadata = {"name": spec.name, "namespace": spec.namespace}
    cpi = {
        "apiVersion": "cpi.tanzu.vmware.com/v1alpha1",
        "kind": "VSphereCPIConfig",
        "metadata": dict(metadata),
        "spec": {"vsphereCPI": {"mode": "vsphereCPI", "tlsCipherSuites": None, "vmNetwork": {"excludeExternalSubnetCidr": None, "excludeInternalSubnetCidr": None}}},
    }
    csi = {
        "apiVersion": "csi.tanzu.vmware.com/v1alpha1",
        "kind": "VSphereCSIConfig",
        "metadata": dict(metadata),
        "spec": {"vsphereCSI": {"config": {"datacenter": spec.vsphere.datacenter, "httpProxy": "", "httpsProxy": "", "insecureFlag": spec.vsphere.insecure, "noProxy": "", "region": None, "tlsThumbprint": spec.vsphere.thumbprint or "", "useTopologyCategories": False, "zone": None}, "mode": "vsphereCSI"}},
    }
    bootstrap = {
        "apiVersion": "run.tanzu.vmware.com/v1alpha3",
        "kind": "ClusterBootstrap",
        "metadata": {
            "annotations": {"tkg.tanzu.vmware.com/add-missing-fields-from-tkr": spec.tkr},
            **metadata,
        },
        "spec": {
            "additionalPackages": [
                {"refName": "metrics-server*"},
                {"refName": "secretgen-controller*"},
                {"refName": "pinniped*"},
            ],
            "cni": {"refName": f"{spec.cni}*", **_provider_ref("cni.tanzu.vmware.com", "AntreaConfig", spec.name)},
            "cpi": {"refName": "vsphere-cpi*", **_provider_ref("cpi.tanzu.vmware.com", "VSphereCPIConfig", spec.name)},
            "csi": {"refName": "vsphere-csi*", **_provider_ref("csi.tanzu.vmware.com", "VSphereCSIConfig", spec.name)},
            "kapp": {"refName": "kapp-controller*", **_provider_ref("run.tanzu.vmware.com", "KappControllerConfig", spec.name)},
        },
    }
    return [cpi, csi, bootstrap, cluster_object(spec)]


def dump_documents(documents: list[dict[str, object]], header_comment: str | None = None) -> str:
    stream = io.StringIO()
    if header_comment:
        stream.write(f"# {header_comment}\n")
    for index, document in enumerate(documents):
        if index:
            stream.write("---\n")
        yaml.safe_dump(document, stream, default_flow_style=False, sort_keys=True)
    return stream.getvalue()
