"""tkg-gpu policy pack: run with ``pulumi preview --policy-pack policies``."""

import pathlib
import sys

# The rules share the project's message catalogs, which live in the project root next to this pack.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from pulumi_policy import (  # noqa: E402
    EnforcementLevel,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

import rules  # noqa: E402


def _validator(rule):
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        if args.resource_type != rules.CLUSTER_CONFIG_TYPE:
            return

        for message in rule(args.props):
            report_violation(message)

    return validate


PolicyPack(
    name="tkg-gpu",
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=[
        ResourceValidationPolicy(
            name="one-gpu-type-per-vm",
            description="A GPU worker VM carries one vendor:device pair only.",
            enforcement_level=EnforcementLevel.MANDATORY,
            validate=_validator(rules.one_gpu_type_per_vm),
        ),
        ResourceValidationPolicy(
            name="passthrough-hardware-version",
            description="Wherever PCI devices are set, the hardware version is explicit and at least vmx-17.",
            enforcement_level=EnforcementLevel.MANDATORY,
            validate=_validator(rules.hardware_version_for_pci),
        ),
    ],
)
