"""Policy rules as pure functions, and the pack's policies as the policy runtime calls them.

Most inputs are built the way the program builds the ``ClusterConfig`` inputs. They then go through the
conversion the runtime applies: a protobuf ``Struct``, where every number becomes a float, then read-only
proxies. Hand-built dictionaries alone can pass where the runtime's values fail.
"""

from __future__ import annotations

import copy
import dataclasses
import pathlib
import re
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2
from pulumi_policy import EnforcementLevel, PolicyResourceOptions, ResourceValidationArgs
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import UNKNOWN_ARRAY_VALUE, unknown_checking_proxy

from components import config, gpu_profile, tkg_variables, vsphere
from components.cluster_config import worker_spec
from components.workload_cluster import explicit_edge_timeouts
from policies import pack, rules
from tests.unit.sites import T4, inventory, site_dict, template

ROOT = pathlib.Path(__file__).resolve().parents[2]
A100_PAIR = "0x10DE:0x20B5"
T4_PAIR = "0x10DE:0x1EB8"
REGISTRY = "harbor.edge01.example.com"

CLUSTER_RULES = {
    "one-gpu-type-per-vm": rules.one_gpu_type_per_vm,
    "passthrough-hardware-version": rules.hardware_version_for_pci,
    "hardware-version-supported-by-hosts": rules.hardware_version_supported_by_hosts,
    "mmio-64bit-sized": rules.mmio_64bit_sized,
    "pci-allow-list-flag": rules.pci_allow_list_flag,
    "gpu-template-efi": rules.gpu_template_efi,
    "gpu-template-secure-boot": rules.gpu_template_secure_boot,
    "gpu-rollout-no-surge": rules.gpu_rollout_no_surge,
    "edge-timeouts-explicit": rules.edge_timeouts_explicit,
    "air-gapped-registry": rules.cluster_registry,
}

EXPECTED_LEVELS = {
    "one-gpu-type-per-vm": EnforcementLevel.MANDATORY,
    "passthrough-hardware-version": EnforcementLevel.MANDATORY,
    "hardware-version-supported-by-hosts": EnforcementLevel.MANDATORY,
    "mmio-64bit-sized": EnforcementLevel.MANDATORY,
    "pci-allow-list-flag": EnforcementLevel.MANDATORY,
    "gpu-template-efi": EnforcementLevel.MANDATORY,
    "gpu-template-secure-boot": EnforcementLevel.ADVISORY,
    "gpu-rollout-no-surge": EnforcementLevel.MANDATORY,
    "edge-timeouts-explicit": EnforcementLevel.MANDATORY,
    "air-gapped-registry": EnforcementLevel.MANDATORY,
    "gpu-operator-chart-pinned": EnforcementLevel.MANDATORY,
    "validation-requests-gpu": EnforcementLevel.MANDATORY,
}


def program_props(raw: dict[str, Any] | None = None, hosts=None, worker_template=None) -> dict[str, Any]:
    """Build the ClusterConfig inputs from a stack configuration as the program does, without vCenter."""
    site = config.parse_site_config(raw if raw is not None else site_dict())
    hosts = hosts if hosts is not None else inventory()
    profile = gpu_profile.build_profile(site, hosts)
    variables = tkg_variables.render_variables(site, profile)

    return {
        "cluster_name": site.cluster.name,
        "namespace": site.cluster.namespace,
        "site_kind": site.site.kind,
        "variables": dict(variables),
        "explicit_edge_timeouts": explicit_edge_timeouts(site),
        "worker": worker_spec(
            profile.worker_pairs,
            variables,
            profile.gpu_memory_gb,
            profile.required_mmio_size_gb,
            tkg_variables.custom_vmx_keys(profile),
            profile.needs_64bit_mmio,
        ),
        "spare_worker_slots": profile.spare_worker_slots,
        "site": gpu_profile.site_facts(site, hosts, worker_template or template()),
        "passthrough": [],
    }


def as_runtime(props: dict[str, Any]) -> Any:
    """Convert inputs as the policy runtime does: through a protobuf Struct into read-only proxies."""
    message = struct_pb2.Struct()
    message.update(props)

    return unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(message)))


def edge_site(**edge: str) -> dict[str, Any]:
    return site_dict(site={"name": "edge-01", "kind": "edge"}, edge=edge)


def with_change(props: dict[str, Any], path: tuple[str, ...], value: Any = None, *, delete: bool = False) -> dict[str, Any]:
    """Return a deep copy of ``props`` with one nested value replaced or deleted."""
    changed = copy.deepcopy(props)
    target = changed
    for key in path[:-1]:
        target = target[key]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value

    return changed


def cluster_props(pairs, version="vmx-17"):
    variables = {"VSPHERE_WORKER_PCI_DEVICES": ",".join(pairs)}
    if version is not None:
        variables["VSPHERE_WORKER_HARDWARE_VERSION"] = version

    return {"cluster_name": "gpu-wc-01", "variables": variables, "worker": {"pci_devices_hex": list(pairs)}}


# --- compliant program output -------------------------------------------------------------------------


COMPLIANT_SITES = {
    "dev-a100": (site_dict(), None),
    "edge-t4": (
        site_dict(site={"name": "edge-01", "kind": "edge"}, gpu={"model": "T4"}, cluster={"workerCount": 1},
                  edge={"nodeStartupTimeout": "60m", "mhcFalseStatusTimeout": "40m"}),
        inventory(gpus_per_host=1, pair=T4),
    ),
    "two-a100-per-worker": (site_dict(gpu={"perWorker": 2}, cluster={"workerCount": 1}), None),
    "air-gapped": (site_dict(registry={"repository": f"{REGISTRY}/tkg"}), None),
}


@pytest.mark.parametrize("site", sorted(COMPLIANT_SITES))
@pytest.mark.parametrize("policy", sorted(CLUSTER_RULES))
def test_program_output_passes(policy, site):
    """What the program renders from a valid stack passes every ClusterConfig rule, also as runtime values."""
    raw, hosts = COMPLIANT_SITES[site]
    props = program_props(raw, hosts)

    assert CLUSTER_RULES[policy](props) == []
    assert CLUSTER_RULES[policy](as_runtime(props)) == []


# --- one-gpu-type-per-vm and passthrough-hardware-version ---------------------------------------------


def test_one_gpu_type_allows_identical_pairs():
    assert rules.one_gpu_type_per_vm(cluster_props([A100_PAIR, A100_PAIR])) == []


def test_one_gpu_type_rejects_mixed_pairs():
    violations = rules.one_gpu_type_per_vm(cluster_props([A100_PAIR, T4_PAIR]))
    assert len(violations) == 1
    assert "mixes 2 GPU types" in violations[0]
    assert "0x10DE:0x1EB8, 0x10DE:0x20B5" in violations[0]


def test_one_gpu_type_without_devices():
    assert rules.one_gpu_type_per_vm({"cluster_name": "cpu-only"}) == []


@pytest.mark.parametrize("version", ["vmx-17", "vmx-19", "vmx-21"])
def test_hardware_version_accepts(version):
    assert rules.hardware_version_for_pci(cluster_props([A100_PAIR], version)) == []


@pytest.mark.parametrize("version", ["vmx-13", "vmx-15", "vmx-16", "17"])
def test_hardware_version_rejects_old(version):
    violations = rules.hardware_version_for_pci(cluster_props([A100_PAIR], version))
    assert len(violations) == 1
    assert f"is {version}" in violations[0]
    assert "vmx-17 or later" in violations[0]


def test_hardware_version_required_with_pci():
    violations = rules.hardware_version_for_pci(cluster_props([A100_PAIR], None))
    assert len(violations) == 1
    assert "default to vmx-15" in violations[0]


def test_hardware_version_not_needed_without_pci():
    assert rules.hardware_version_for_pci(cluster_props([], "vmx-13")) == []


# --- hardware-version-supported-by-hosts --------------------------------------------------------------


THREE_HOSTS = ["esxi-01.lab.local", "esxi-02.lab.local", "esxi-03.lab.local"]


def mixed_esxi_hosts():
    hosts = inventory(hosts=3)
    versions = {"esxi-01.lab.local": "8.0.2", "esxi-02.lab.local": "7.0.3", "esxi-03.lab.local": "8.0.0"}

    return {name: dataclasses.replace(host, esxi_version=versions[name]) for name, host in hosts.items()}


@pytest.mark.parametrize("version", ["vmx-17", "vmx-19"])
def test_host_hardware_version_within_oldest_host(version):
    props = program_props(site_dict(hosts=THREE_HOSTS, cluster={"hardwareVersion": version}), mixed_esxi_hosts())
    assert rules.hardware_version_supported_by_hosts(as_runtime(props)) == []


def test_host_hardware_version_names_oldest_host():
    props = program_props(site_dict(hosts=THREE_HOSTS, cluster={"hardwareVersion": "vmx-21"}), mixed_esxi_hosts())

    violations = rules.hardware_version_supported_by_hosts(as_runtime(props))

    assert len(violations) == 1
    assert "Cluster gpu-wc-01" in violations[0]
    assert "is vmx-21" in violations[0]
    assert "esxi-02.lab.local (ESXi 7.0.3)" in violations[0]
    assert "up to vmx-19" in violations[0]
    assert "2 of 3 hosts" in violations[0]
    assert "tkg-gpu:cluster.hardwareVersion to vmx-19 or lower" in violations[0]


def test_host_hardware_version_vmx22_on_esxi_802():
    props = program_props(site_dict(cluster={"hardwareVersion": "vmx-22"}))

    violations = rules.hardware_version_supported_by_hosts(as_runtime(props))

    assert len(violations) == 1
    assert "(ESXi 8.0.2), runs VMs up to vmx-21" in violations[0]


def test_host_hardware_version_skips_unknown_esxi():
    props = program_props(site_dict(cluster={"hardwareVersion": "vmx-22"}))
    props["site"]["host_max_hardware_versions"] = {name: None for name in props["site"]["esxi_versions"]}

    assert rules.hardware_version_supported_by_hosts(as_runtime(props)) == []


# --- mmio-64bit-sized ---------------------------------------------------------------------------------

MMIO_SIZE = ("worker", "custom_vmx_keys", "pciPassthru.64bitMMIOSizeGB")
MMIO_ENABLE = ("worker", "custom_vmx_keys", "pciPassthru.use64bitMMIO")


def test_mmio_not_needed_for_t4():
    props = program_props(site_dict(gpu={"model": "T4"}, cluster={"workerCount": 1}), inventory(gpus_per_host=1, pair=T4))
    assert props["worker"]["custom_vmx_keys"] == {}
    assert rules.mmio_64bit_sized(as_runtime(props)) == []


@pytest.mark.parametrize("value", [None, "FALSE", ""])
def test_mmio_requires_use64bit_true(value):
    props = program_props()
    props = with_change(props, MMIO_ENABLE, delete=True) if value is None else with_change(props, MMIO_ENABLE, value)

    violations = rules.mmio_64bit_sized(as_runtime(props))

    assert len(violations) == 1
    assert "pciPassthru.use64bitMMIO" in violations[0]
    assert f"is {value or 'not set'} instead of TRUE" in violations[0]


def test_mmio_accepts_lower_case_true():
    props = with_change(program_props(), MMIO_ENABLE, "true")
    assert rules.mmio_64bit_sized(props) == []


@pytest.mark.parametrize(
    ("size", "shown"),
    [("128", "128"), ("384", "384"), ("0", "0"), ("many", "many"), (None, "not set")],
    ids=["too-small", "not-power-of-two", "zero", "not-a-number", "missing"],
)
def test_mmio_rejects_bad_size(size, shown):
    props = program_props()
    assert props["worker"]["required_mmio_size_gb"] == 256
    props = with_change(props, MMIO_SIZE, delete=True) if size is None else with_change(props, MMIO_SIZE, size)

    violations = rules.mmio_64bit_sized(as_runtime(props))

    assert len(violations) == 1
    assert f"pciPassthru.64bitMMIOSizeGB is {shown}" in violations[0]
    assert "a power of two of at least 256 GB" in violations[0]
    assert "tkg-gpu:cluster.mmioSizeGb" in violations[0]


def test_mmio_accepts_larger_power_of_two():
    props = program_props(site_dict(cluster={"mmioSizeGb": 1024}))
    assert rules.mmio_64bit_sized(as_runtime(props)) == []


def test_mmio_unknown_memory_needs_power_of_two():
    raw = site_dict(gpu={"model": None, "vendorDevice": "0x10DE:0x2999", "memoryGb": 48}, cluster={"workerCount": 1})
    hosts = inventory(pair=(0x10DE, 0x2999))
    props = program_props(raw, hosts)
    props["worker"]["required_mmio_size_gb"] = None

    assert rules.mmio_64bit_sized(props) == []
    violations = rules.mmio_64bit_sized(with_change(props, MMIO_SIZE, "96"))
    assert len(violations) == 1
    assert "need a power of two in GB" in violations[0]


# --- pci-allow-list-flag ------------------------------------------------------------------------------

ALLOW_LIST_FLAG = ("variables", "VSPHERE_IGNORE_PCI_DEVICES_ALLOW_LIST")


def test_allow_list_flag_not_needed_for_t4():
    props = program_props(site_dict(gpu={"model": "T4"}, cluster={"workerCount": 1}), inventory(gpus_per_host=1, pair=T4))
    assert "VSPHERE_IGNORE_PCI_DEVICES_ALLOW_LIST" not in props["variables"]
    assert rules.pci_allow_list_flag(as_runtime(props)) == []


@pytest.mark.parametrize("value", ["true", "True", "yes"])
def test_allow_list_flag_rejects_quoted_string(value):
    props = with_change(program_props(), ALLOW_LIST_FLAG, value)

    violations = rules.pci_allow_list_flag(as_runtime(props))

    assert len(violations) == 1
    assert f"quoted string {value!r}" in violations[0]
    assert A100_PAIR in violations[0]


@pytest.mark.parametrize(("value", "shown"), [(False, "false"), (None, "not set"), (1, "1")])
def test_allow_list_flag_rejects_missing_or_false(value, shown):
    props = program_props()
    props = with_change(props, ALLOW_LIST_FLAG, delete=True) if value is None else with_change(props, ALLOW_LIST_FLAG, value)

    violations = rules.pci_allow_list_flag(props)

    assert len(violations) == 1
    assert f"VSPHERE_IGNORE_PCI_DEVICES_ALLOW_LIST is {shown}," in violations[0]
    assert "only the T4, 0x10DE:0x1EB8" in violations[0]


def test_allow_list_flag_compares_ids_without_case():
    props = cluster_props(["0x10de:0x1eb8"])
    assert rules.pci_allow_list_flag(props) == []


# --- gpu-template-efi and gpu-template-secure-boot ----------------------------------------------------


def bios_template():
    return vsphere.TemplateState(
        path="/dc-lab/vm/tkg-photon-5-bios", is_template=True, firmware="bios", hardware_version="vmx-15", secure_boot=False
    )


def test_template_efi_rejects_bios():
    props = program_props(worker_template=bios_template())

    violations = rules.gpu_template_efi(as_runtime(props))

    assert len(violations) == 1
    assert "/dc-lab/vm/tkg-photon-5-bios boots with bios firmware" in violations[0]
    assert "tkg-gpu:vcenter.template" in violations[0]


def test_template_efi_rejects_plain_vm():
    props = with_change(program_props(), ("site", "template", "is_template"), False)

    violations = rules.gpu_template_efi(as_runtime(props))

    assert len(violations) == 1
    assert "is a virtual machine, not a VM template" in violations[0]


def test_template_efi_needs_gpus():
    props = with_change(cluster_props([]), ("site",), {"template": {"firmware": "bios", "is_template": True}})
    assert rules.gpu_template_efi(props) == []


def test_secure_boot_warns():
    props = with_change(program_props(), ("site", "template", "secure_boot"), True)

    violations = rules.gpu_template_secure_boot(as_runtime(props))

    assert len(violations) == 1
    assert "UEFI Secure Boot enabled" in violations[0]
    assert "driver.enabled: false" in violations[0]


# --- gpu-rollout-no-surge -----------------------------------------------------------------------------


def test_rollout_default_is_on_delete_without_spare_gpu():
    props = program_props(site_dict(cluster={"workerCount": 4}))
    assert props["spare_worker_slots"] == 0
    assert props["variables"]["WORKER_ROLLOUT_STRATEGY"] == "OnDelete"
    assert rules.gpu_rollout_no_surge(as_runtime(props)) == []


def test_rollout_rolling_update_with_spare_gpu():
    props = program_props(site_dict(cluster={"workerCount": 3, "rolloutStrategy": "RollingUpdate"}))
    assert props["spare_worker_slots"] == 1
    assert rules.gpu_rollout_no_surge(as_runtime(props)) == []


def test_rollout_rejects_rolling_update_without_spare_gpu():
    props = program_props(site_dict(cluster={"workerCount": 4, "rolloutStrategy": "RollingUpdate"}))

    violations = rules.gpu_rollout_no_surge(as_runtime(props))

    assert len(violations) == 1
    assert "WORKER_ROLLOUT_STRATEGY is RollingUpdate" in violations[0]
    assert "has 0 spare GPU sets" in violations[0]
    assert "tkg-gpu:cluster.rolloutStrategy to OnDelete" in violations[0]


def test_rollout_unset_counts_as_rolling_update():
    props = with_change(program_props(site_dict(cluster={"workerCount": 4})), ("variables", "WORKER_ROLLOUT_STRATEGY"), delete=True)

    violations = rules.gpu_rollout_no_surge(props)

    assert len(violations) == 1
    assert "TKG default RollingUpdate" in violations[0]


def test_rollout_rejects_unknown_strategy():
    props = with_change(program_props(), ("variables", "WORKER_ROLLOUT_STRATEGY"), "Recreate")

    violations = rules.gpu_rollout_no_surge(props)

    assert len(violations) == 1
    assert "accepted values are RollingUpdate and OnDelete" in violations[0]


# --- edge-timeouts-explicit ---------------------------------------------------------------------------


def test_edge_timeouts_required_at_edge():
    props = program_props(edge_site())
    assert props["variables"]["NODE_STARTUP_TIMEOUT"] == "60m"
    assert props["explicit_edge_timeouts"] == []

    violations = rules.edge_timeouts_explicit(as_runtime(props))

    assert len(violations) == 2
    assert "without an explicit NODE_STARTUP_TIMEOUT (rendered value: 60m)" in violations[0]
    assert "tkg-gpu:edge.nodeStartupTimeout" in violations[0]
    assert "without an explicit MHC_FALSE_STATUS_TIMEOUT (rendered value: 40m)" in violations[1]
    assert "tkg-gpu:edge.mhcFalseStatusTimeout" in violations[1]


def test_edge_timeouts_one_missing():
    props = program_props(edge_site(nodeStartupTimeout="90m"))

    violations = rules.edge_timeouts_explicit(as_runtime(props))

    assert len(violations) == 1
    assert "MHC_FALSE_STATUS_TIMEOUT" in violations[0]


def test_edge_timeouts_explicit_pass():
    props = program_props(edge_site(nodeStartupTimeout="1h30m", mhcFalseStatusTimeout="40m"))
    assert props["explicit_edge_timeouts"] == ["MHC_FALSE_STATUS_TIMEOUT", "NODE_STARTUP_TIMEOUT"]
    assert rules.edge_timeouts_explicit(as_runtime(props)) == []


@pytest.mark.parametrize(("value", "shown"), [(40, "40"), ("40", "'40'"), ("forty minutes", "'forty minutes'")])
def test_edge_timeouts_reject_non_durations(value, shown):
    props = program_props(edge_site(nodeStartupTimeout="60m", mhcFalseStatusTimeout="40m"))
    props = with_change(props, ("variables", "MHC_FALSE_STATUS_TIMEOUT"), value)

    violations = rules.edge_timeouts_explicit(as_runtime(props))

    assert len(violations) == 1
    assert f"MHC_FALSE_STATUS_TIMEOUT is {shown}, which is not a Go duration" in violations[0]


def test_edge_timeouts_not_required_in_datacenter():
    props = program_props()
    assert "NODE_STARTUP_TIMEOUT" not in props["variables"]
    assert rules.edge_timeouts_explicit(props) == []


# --- air-gapped-registry ------------------------------------------------------------------------------


def test_cluster_registry_rejects_other_repository():
    props = program_props(site_dict(registry={"repository": f"{REGISTRY}/tkg"}))
    props = with_change(props, ("variables", "TKG_CUSTOM_IMAGE_REPOSITORY"), "projects.registry.vmware.com/tkg")

    violations = rules.cluster_registry(as_runtime(props))

    assert len(violations) == 1
    assert "TKG_CUSTOM_IMAGE_REPOSITORY is projects.registry.vmware.com/tkg" in violations[0]
    assert f"site registry is {REGISTRY}/tkg" in violations[0]


def test_cluster_registry_rejects_missing_repository():
    props = program_props(site_dict(registry={"repository": f"{REGISTRY}/tkg"}))
    props = with_change(props, ("variables", "TKG_CUSTOM_IMAGE_REPOSITORY"), delete=True)

    violations = rules.cluster_registry(props)

    assert len(violations) == 1
    assert "TKG_CUSTOM_IMAGE_REPOSITORY is not set" in violations[0]


@pytest.mark.parametrize(
    ("reference", "registry", "expected"),
    [
        (f"{REGISTRY}/nvidia/driver:580", REGISTRY, True),
        (f"oci://{REGISTRY}/nvidia/gpu-operator", REGISTRY, True),
        (f"https://{REGISTRY}/chartrepo/nvidia", REGISTRY, True),
        ("HARBOR.edge01.example.com/nvidia/driver", REGISTRY, True),
        (f"{REGISTRY}/nvidia/driver", f"{REGISTRY}/nvidia", True),
        (f"{REGISTRY}/nvidia", f"{REGISTRY}/nvidia", True),
        (f"{REGISTRY}/nvidia-mirror/driver", f"{REGISTRY}/nvidia", False),
        (f"{REGISTRY}.evil.example.org/nvidia/driver", REGISTRY, False),
        (f"{REGISTRY}:8443/nvidia/driver", REGISTRY, False),
        ("nvcr.io/nvidia/driver", REGISTRY, False),
        ("nvidia/cuda:12.4.1-base", REGISTRY, False),
        (REGISTRY, REGISTRY, False),
    ],
)
def test_in_registry(reference, registry, expected):
    assert rules.in_registry(reference, registry) is expected


def gpu_operator_release(**changes: Any) -> dict[str, Any]:
    release = {
        "name": "gpu-operator",
        "chart": f"oci://{REGISTRY}/nvidia/gpu-operator",
        "version": "v26.3.0",
        "namespace": "gpu-operator",
        "values": {
            "operator": {"repository": f"{REGISTRY}/nvidia", "image": "gpu-operator", "version": "v26.3.0"},
            "driver": {"repository": f"{REGISTRY}/nvidia", "image": "driver", "version": "580.126.20"},
            "validator": {"repository": f"{REGISTRY}/nvidia/cloud-native", "image": "gpu-operator-validator"},
            "node-feature-discovery": {"image": {"repository": f"{REGISTRY}/nfd/node-feature-discovery"}},
            "dcgmExporter": {"enabled": True, "repository": f"{REGISTRY}/nvidia/k8s"},
            "extraImages": [f"{REGISTRY}/tools/busybox:1.37"],
        },
    }
    release.update(changes)

    return release


def test_release_in_registry_passes():
    assert rules.release_references_in_registry(as_runtime(gpu_operator_release()), REGISTRY, "gpu-operator") == []


def test_release_rules_need_registry_config():
    release = gpu_operator_release(chart="gpu-operator", repositoryOpts={"repo": "https://helm.ngc.nvidia.com/nvidia"})
    assert rules.release_references_in_registry(release, None, "gpu-operator") == []


def test_release_rejects_operand_outside_registry():
    values = gpu_operator_release()["values"]
    values["driver"]["repository"] = "nvcr.io/nvidia"
    values["node-feature-discovery"]["image"]["repository"] = "registry.k8s.io/nfd/node-feature-discovery"

    violations = rules.release_references_in_registry(as_runtime(gpu_operator_release(values=values)), REGISTRY, "gpu-operator")

    assert len(violations) == 2
    assert "values.driver.repository is nvcr.io/nvidia" in violations[0]
    assert "values.node-feature-discovery.image.repository is registry.k8s.io/nfd/node-feature-discovery" in violations[1]
    assert f"outside the site registry {REGISTRY}" in violations[0]


def test_release_checks_registry_key_and_full_images():
    values = {"cache": {"image": {"registry": "docker.io", "repository": "bitnami/redis"}}, "sidecars": [{"image": "busybox:1.37"}]}

    violations = rules.release_references_in_registry(gpu_operator_release(values=values), REGISTRY, "gpu-operator")

    assert len(violations) == 2
    assert "values.cache.image.registry is docker.io/bitnami/redis" in violations[0]
    assert "values.sidecars[0].image is busybox:1.37" in violations[1]


def test_release_registry_key_alone_is_a_prefix():
    inside = {"global": {"image": {"registry": REGISTRY}}}
    outside = {"global": {"image": {"registry": "docker.io"}}}

    assert rules.release_references_in_registry(gpu_operator_release(values=inside), REGISTRY, "gpu-operator") == []
    violations = rules.release_references_in_registry(gpu_operator_release(values=outside), REGISTRY, "gpu-operator")
    assert len(violations) == 1
    assert "values.global.image.registry is docker.io, which is outside" in violations[0]


def test_release_rejects_public_chart_repository():
    release = gpu_operator_release(chart="gpu-operator", repositoryOpts={"repo": "https://helm.ngc.nvidia.com/nvidia"})

    violations = rules.release_references_in_registry(release, REGISTRY, "gpu-operator")

    assert len(violations) == 1
    assert "repositoryOpts.repo is https://helm.ngc.nvidia.com/nvidia" in violations[0]


def test_release_rejects_chart_without_repository():
    violations = rules.release_references_in_registry(gpu_operator_release(chart="nvidia/gpu-operator"), REGISTRY, "gpu-operator")

    assert len(violations) == 1
    assert "chart nvidia/gpu-operator is fetched from a Helm repository" in violations[0]


@pytest.mark.parametrize("chart", ["./charts/gpu-operator", "/srv/charts/gpu-operator", "gpu-operator-v26.3.0.tgz"])
def test_release_accepts_local_chart(chart):
    assert rules.release_references_in_registry(gpu_operator_release(chart=chart), REGISTRY, "gpu-operator") == []


def cuda_pod(image: str = f"{REGISTRY}/nvidia/cuda-sample@sha256:{'a' * 64}", gpus: Any = 1, **labels: str) -> dict[str, Any]:
    return {
        "metadata": {"name": "cuda-vector-add", "labels": labels or {"app.kubernetes.io/part-of": "tkg-gpu-validation"}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "cuda", "image": image, "resources": {"limits": {"nvidia.com/gpu": gpus}}}],
        },
    }


def test_pod_images_in_registry_pass():
    assert rules.pod_images_in_registry(as_runtime(cuda_pod()), REGISTRY, "cuda-vector-add") == []


def test_pod_rejects_image_outside_registry():
    pod = cuda_pod(image="nvcr.io/nvidia/k8s/cuda-sample:vectoradd-cuda12.5.0")
    pod["spec"]["initContainers"] = [{"name": "wait", "image": "busybox"}]

    violations = rules.pod_images_in_registry(as_runtime(pod), REGISTRY, "cuda-vector-add")

    assert len(violations) == 2
    assert "Pod cuda-vector-add: spec.initContainers[0] (wait) uses image busybox" in violations[0]
    assert "spec.containers[0] (cuda) uses image nvcr.io/nvidia/k8s/cuda-sample:vectoradd-cuda12.5.0" in violations[1]


def test_pod_rejects_container_without_image():
    pod = cuda_pod()
    del pod["spec"]["containers"][0]["image"]

    violations = rules.pod_images_in_registry(pod, REGISTRY, "cuda-vector-add")

    assert len(violations) == 1
    assert "uses image not set" in violations[0]


# --- gpu-operator-chart-pinned ------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["v26.3.0", "26.3.0", "v25.10.0", "v26.3.0-rc.1"])
def test_chart_pinned_accepts_exact_version(version):
    release = gpu_operator_release(version=version)
    assert rules.gpu_operator_chart_pinned(as_runtime(release), "gpu-operator") == []


@pytest.mark.parametrize("version", ["^26.3.0", "~26.3", ">=25.10.0", "26.x", "*", "26.3", "latest", "", None])
def test_chart_pinned_rejects_ranges(version):
    release = gpu_operator_release(version=version)

    violations = rules.gpu_operator_chart_pinned(release, "gpu-operator")

    assert len(violations) == 1
    assert "Release gpu-operator: chart gpu-operator has version" in violations[0]
    assert "not an exact chart version" in violations[0]


@pytest.mark.parametrize("name", [None, "", "gpu-operator-1a2b3c4d", "GPU_Operator", "g" * 54])
def test_chart_pinned_rejects_missing_or_generated_name(name):
    release = gpu_operator_release(name=name)

    violations = rules.gpu_operator_chart_pinned(release, "gpu-operator")

    assert len(violations) == 1
    assert "release name is" in violations[0]
    assert "fixed DNS label" in violations[0]


@pytest.mark.parametrize(
    "chart",
    ["gpu-operator", "nvidia/gpu-operator", f"oci://{REGISTRY}/nvidia/gpu-operator", "./charts/gpu-operator-v26.3.0.tgz"],
)
def test_chart_pinned_finds_gpu_operator(chart):
    release = gpu_operator_release(chart=chart, version="^26")
    assert len(rules.gpu_operator_chart_pinned(release, "gpu-operator")) == 1


@pytest.mark.parametrize("chart", ["ingress-nginx", "nvidia/gpu-operator-extras", "network-operator"])
def test_chart_pinned_ignores_other_charts(chart):
    assert rules.gpu_operator_chart_pinned({"chart": chart}, "other") == []


# --- validation-requests-gpu --------------------------------------------------------------------------


@pytest.mark.parametrize("gpus", [1, 2, "1", 1.0])
def test_validation_pod_with_gpu_limit(gpus):
    assert rules.validation_requests_gpu(as_runtime(cuda_pod(gpus=gpus)), "cuda-vector-add") == []


@pytest.mark.parametrize(("gpus", "found"), [(0, "0"), ("0", "'0'"), ("one", "'one'"), ("500m", "'500m'")])
def test_validation_pod_rejects_bad_limit(gpus, found):
    violations = rules.validation_requests_gpu(cuda_pod(gpus=gpus), "cuda-vector-add")

    assert len(violations) == 1
    assert "Pod cuda-vector-add: labelled app.kubernetes.io/part-of=tkg-gpu-validation" in violations[0]
    assert f"spec.containers[0]: {found}" in violations[0]


def test_validation_pod_rejects_requests_only():
    pod = cuda_pod()
    pod["spec"]["containers"][0]["resources"] = {"requests": {"nvidia.com/gpu": 1}}

    violations = rules.validation_requests_gpu(as_runtime(pod), "cuda-vector-add")

    assert len(violations) == 1
    assert "no GPU limit found" in violations[0]


def test_validation_rule_ignores_other_pods():
    pod = cuda_pod(gpus=0, **{"app.kubernetes.io/part-of": "monitoring"})
    assert rules.validation_requests_gpu(pod, "exporter") == []


# --- the pack as the runtime calls it -----------------------------------------------------------------


def policies_by_name():
    return {policy.name: policy for policy in pack.POLICIES}


def run_policy(name: str, resource_type: str, props: dict[str, Any], config: dict[str, Any] | None = None) -> list[str]:
    """Call a policy's validate as the runtime does, collecting the reported messages."""
    reported: list[str] = []
    options = PolicyResourceOptions(
        protect=False, ignore_changes=[], delete_before_replace=None, aliases=[], custom_timeouts=None,
        additional_secret_outputs=[], parent=None,
    )
    args = ResourceValidationArgs(
        resource_type, as_runtime(props), f"urn:pulumi:lab::tkg-gpu::{resource_type}::thing", "thing", options, None, config
    )
    policies_by_name()[name].validate(args, lambda message, urn=None: reported.append(message))

    return reported


def test_pack_levels_are_explicit_and_documented_defaults():
    levels = {policy.name: policy.enforcement_level for policy in pack.POLICIES}
    assert levels == EXPECTED_LEVELS


def test_pack_names_are_kebab_case_and_unique():
    names = [policy.name for policy in pack.POLICIES]
    assert len(names) == len(set(names))
    for name in names:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name), name


def test_pack_descriptions_are_one_sentence():
    for policy in pack.POLICIES:
        assert policy.description.endswith("."), policy.name
        assert ". " not in policy.description.rstrip("."), policy.name


@pytest.mark.parametrize("document", ["docs/policies.md", "docs/policies.zh-CN.md"])
def test_docs_describe_every_policy(document):
    text = (ROOT / document).read_text(encoding="utf-8")
    for policy in pack.POLICIES:
        assert f"`{policy.name}`" in text, f"{document} does not describe {policy.name}"


def test_cluster_policies_survive_unknown_passthrough():
    """A first preview has no passthrough state yet; no ClusterConfig policy may read it."""
    props = program_props(site_dict(cluster={"hardwareVersion": "vmx-22", "workerCount": 4, "rolloutStrategy": "RollingUpdate"}))
    props["passthrough"] = UNKNOWN_ARRAY_VALUE

    for name in CLUSTER_RULES:
        run_policy(name, rules.CLUSTER_CONFIG_TYPE, props)

    assert len(run_policy("hardware-version-supported-by-hosts", rules.CLUSTER_CONFIG_TYPE, props)) == 1
    assert len(run_policy("gpu-rollout-no-surge", rules.CLUSTER_CONFIG_TYPE, props)) == 1


def test_cluster_policies_ignore_other_types():
    props = with_change(program_props(), ALLOW_LIST_FLAG, "true")
    assert run_policy("pci-allow-list-flag", "pulumi-python:dynamic/tkggpu:TanzuCluster", props) == []
    assert len(run_policy("pci-allow-list-flag", rules.CLUSTER_CONFIG_TYPE, props)) == 1


def test_air_gapped_policy_reads_site_registry_config():
    release = gpu_operator_release(chart="gpu-operator", repositoryOpts={"repo": "https://helm.ngc.nvidia.com/nvidia"})

    assert run_policy("air-gapped-registry", rules.HELM_RELEASE_TYPE, release) == []
    assert len(run_policy("air-gapped-registry", rules.HELM_RELEASE_TYPE, release, {pack.SITE_REGISTRY_KEY: REGISTRY})) == 1
    assert len(run_policy("air-gapped-registry", rules.POD_TYPE, cuda_pod(image="busybox"), {pack.SITE_REGISTRY_KEY: REGISTRY})) == 1


def test_air_gapped_policy_checks_cluster_config():
    props = program_props(site_dict(registry={"repository": f"{REGISTRY}/tkg"}))
    props = with_change(props, ("variables", "TKG_CUSTOM_IMAGE_REPOSITORY"), "projects.registry.vmware.com/tkg")

    assert len(run_policy("air-gapped-registry", rules.CLUSTER_CONFIG_TYPE, props)) == 1


def test_kubernetes_policies_bind_their_types():
    release = gpu_operator_release(version="^26")
    pod = cuda_pod(gpus=0)

    assert len(run_policy("gpu-operator-chart-pinned", rules.HELM_RELEASE_TYPE, release)) == 1
    assert run_policy("gpu-operator-chart-pinned", rules.POD_TYPE, release) == []
    assert len(run_policy("validation-requests-gpu", rules.POD_TYPE, pod)) == 1
    assert run_policy("validation-requests-gpu", rules.HELM_RELEASE_TYPE, pod) == []


def test_site_registry_schema_pattern():
    pattern = re.compile(pack.SITE_REGISTRY_SCHEMA.properties[pack.SITE_REGISTRY_KEY]["pattern"])
    assert pattern.match(REGISTRY)
    assert pattern.match("harbor.example.com:8443/nvidia")
    assert not pattern.match("https://harbor.example.com")
