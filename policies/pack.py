"""The tkg-gpu policies: each rule of ``rules.py`` bound to the resource types it checks.

Every policy sets its enforcement level explicitly. ``pulumi preview --policy-pack policies
--policy-pack-config FILE`` overrides it per policy name, and the ``air-gapped-registry`` policy reads
``siteRegistry`` from the same file (docs/policies.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from policies import rules

SITE_REGISTRY_KEY = "siteRegistry"

ClusterRule = Callable[[Mapping[str, Any]], list[str]]
KubernetesRule = Callable[[Mapping[str, Any], str], list[str]]


def _cluster_config_validator(rule: ClusterRule) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type != rules.CLUSTER_CONFIG_TYPE:
            return

        for message in rule(args.props):
            report_violation(message)

    return validate


def _kubernetes_validator(resource_type: str, rule: KubernetesRule) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type != resource_type:
            return

        for message in rule(args.props, args.name):
            report_violation(message)

    return validate


def validate_air_gapped_registry(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Check the cluster's TKG registry, and the Release and Pod references against ``siteRegistry``."""
    if args.resource_type == rules.CLUSTER_CONFIG_TYPE:
        messages = rules.cluster_registry(args.props)
    elif args.resource_type == rules.HELM_RELEASE_TYPE:
        messages = rules.release_references_in_registry(args.props, args.get_config().get(SITE_REGISTRY_KEY), args.name)
    elif args.resource_type == rules.POD_TYPE:
        messages = rules.pod_images_in_registry(args.props, args.get_config().get(SITE_REGISTRY_KEY), args.name)
    else:
        return

    for message in messages:
        report_violation(message)


SITE_REGISTRY_SCHEMA = PolicyConfigSchema(
    properties={
        SITE_REGISTRY_KEY: {
            "type": "string",
            "description": "host[:port] or host[:port]/project that every Helm chart and workload image must come from",
            "pattern": r"^[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._-]+)*$",
        },
    },
)

POLICIES: list[ResourceValidationPolicy] = [
    ResourceValidationPolicy(
        name="one-gpu-type-per-vm",
        description="A GPU worker VM carries one vendor:device pair only.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=_cluster_config_validator(rules.one_gpu_type_per_vm),
    ),
    ResourceValidationPolicy(
        name="passthrough-hardware-version",
        description="Wherever PCI devices are set, the hardware version is explicit and at least vmx-17.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=_cluster_config_validator(rules.hardware_version_for_pci),
    ),
    ResourceValidationPolicy(
        name="hardware-version-supported-by-hosts",
        description="The worker hardware version is no higher than the oldest ESXi host of the site can run.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=_cluster_config_validator(rules.hardware_version_supported_by_hosts),
    ),
    ResourceValidationPolicy(
        name="mmio-64bit-sized",
        description="Large-BAR GPUs get pciPassthru.use64bitMMIO=TRUE and a power-of-two MMIO window no smaller than required.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=_cluster_config_validator(rules.mmio_64bit_sized),
    ),
    ResourceValidationPolicy(
        name="pci-allow-list-flag",
        description="Any GPU other than the T4 comes with VSPHERE_IGNORE_PCI_DEVICES_ALLOW_LIST set to the boolean true.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=_cluster_config_validator(rules.pci_allow_list_flag),
    ),
    ResourceValidationPolicy(
        name="gpu-template-efi",
        description="The GPU worker template is a VM template that boots with EFI firmware.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=_cluster_config_validator(rules.gpu_template_efi),
    ),
    ResourceValidationPolicy(
        name="gpu-template-secure-boot",
        description="The GPU worker template has UEFI Secure Boot off, so the GPU Operator's driver module can load.",
        enforcement_level=EnforcementLevel.ADVISORY,
        validate=_cluster_config_validator(rules.gpu_template_secure_boot),
    ),
    ResourceValidationPolicy(
        name="gpu-rollout-no-surge",
        description="Workers roll out with RollingUpdate only when a spare GPU set exists for the surge VM, otherwise with OnDelete.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=_cluster_config_validator(rules.gpu_rollout_no_surge),
    ),
    ResourceValidationPolicy(
        name="edge-timeouts-explicit",
        description="Edge stacks set NODE_STARTUP_TIMEOUT and MHC_FALSE_STATUS_TIMEOUT themselves, as Go durations.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=_cluster_config_validator(rules.edge_timeouts_explicit),
    ),
    ResourceValidationPolicy(
        name="air-gapped-registry",
        description="At a site with its own registry, TKG images, Helm charts and container images all come from it.",
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=SITE_REGISTRY_SCHEMA,
        validate=validate_air_gapped_registry,
    ),
    ResourceValidationPolicy(
        name="gpu-operator-chart-pinned",
        description="The gpu-operator Helm Release names an exact chart version and a fixed release name.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=_kubernetes_validator(rules.HELM_RELEASE_TYPE, rules.gpu_operator_chart_pinned),
    ),
    ResourceValidationPolicy(
        name="validation-requests-gpu",
        description="The CUDA validation Pod requests at least one nvidia.com/gpu in its limits.",
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=_kubernetes_validator(rules.POD_TYPE, rules.validation_requests_gpu),
    ),
]
