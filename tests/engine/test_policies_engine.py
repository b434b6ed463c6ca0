"""Policy violations stop `pulumi preview --policy-pack policies`, and nothing changes in the lab.

Most cases run the real program against the lab with a stack setting that breaks one rule. The program
itself never renders a few faults: a missing MMIO key, a quoted allow-list flag, a second registry.
Those cases run a copy of the program whose ``__main__.py`` first registers a Pulumi resource transform.
The transform changes one ``ClusterConfig`` input, as a program bug or a hand edit would. It reads the
change from the stack setting ``engine-test:fault``, and only the copy has it.

The gpu-operator-chart-pinned and validation-requests-gpu policies check Kubernetes resources
(``kubernetes:helm.sh/v3:Release``, ``kubernetes:core/v1:Pod``) that the site program always declares
correctly; tests/engine/test_release_pod_policies_engine.py runs them on a program of faulty resources.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import shutil

import pytest
import yaml

from tests import labtools

REGISTRY = "harbor.edge01.example.com/tkg"
FAULT_KEY = "engine-test:fault"

# Runs the site program after registering a transform that applies the stack's fault to ClusterConfig.
FAULT_WRAPPER = '''"""Site program with one injected ClusterConfig fault, for the policy engine tests."""

import runpy

import pulumi

CLUSTER_CONFIG_TYPE = "pulumi-python:dynamic/tkggpu:ClusterConfig"
fault = pulumi.Config("engine-test").get_object("fault") or {}


def inject_fault(args: pulumi.ResourceTransformArgs):
    if args.type_ != CLUSTER_CONFIG_TYPE:
        return None

    props = dict(args.props)
    for path, value in fault.get("set", []):
        target = props
        for key in path[:-1]:
            target[key] = dict(target[key])
            target = target[key]
        target[path[-1]] = value
    for path in fault.get("delete", []):
        target = props
        for key in path[:-1]:
            target[key] = dict(target[key])
            target = target[key]
        del target[path[-1]]

    return pulumi.ResourceTransformResult(props=props, opts=args.opts)


pulumi.runtime.register_resource_transform(inject_fault)
runpy.run_path("site_program.py", run_name="__main__")
'''


@pytest.fixture(scope="session")
def fault_project(project, tmp_path_factory) -> pathlib.Path:
    """Copy the engine-test project and run its program behind the fault-injecting wrapper."""
    target = tmp_path_factory.mktemp("fault-project") / "project"
    shutil.copytree(project, target, ignore=shutil.ignore_patterns("Pulumi.*.yaml", "__pycache__"))
    (target / "__main__.py").rename(target / "site_program.py")
    (target / "__main__.py").write_text(FAULT_WRAPPER)

    return target


@pytest.fixture
def make_fault_stack(make_stack, project, fault_project):
    """Create a lab stack whose preview runs in the fault project with ``fault`` in its configuration."""

    def factory(name: str, fault: dict, **overrides):
        stack = make_stack(name, **overrides)
        document = yaml.safe_load((project / f"Pulumi.{name}.yaml").read_text())
        document["config"][FAULT_KEY] = fault
        (fault_project / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump(document))

        return dataclasses.replace(stack, project_dir=fault_project)

    return factory


def remove_setting(project: pathlib.Path, stack: str, key: str) -> None:
    """Delete one ``tkg-gpu:`` setting from a stack's configuration file."""
    path = project / f"Pulumi.{stack}.yaml"
    document = yaml.safe_load(path.read_text())
    del document["config"][key]
    path.write_text(yaml.safe_dump(document))


def preview_output(stack, *args: str):
    result = stack.run("preview", "--policy-pack", "policies", *args, check=False)

    return result, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("name", "overrides", "policy", "message"),
    [
        (
            "mixed-gpus",
            {"gpu": {"workerDevices": ["0x10DE:0x20B5", "0x10DE:0x1EB8"]}, "cluster": {"name": "gpu-mixed", "workerCount": 1}},
            "one-gpu-type-per-vm",
            "mixes 2 GPU types in one worker VM",
        ),
        (
            "vmx15",
            {"cluster": {"name": "gpu-vmx15", "workerCount": 1, "hardwareVersion": "vmx-15"}},
            "passthrough-hardware-version",
            "VSPHERE_WORKER_HARDWARE_VERSION is vmx-15",
        ),
        (
            "vmx22",
            {"cluster": {"name": "gpu-vmx22", "workerCount": 1, "hardwareVersion": "vmx-22"}},
            "hardware-version-supported-by-hosts",
            "VSPHERE_WORKER_HARDWARE_VERSION is vmx-22, but the oldest ESXi host, esxi-01.lab.local (ESXi 8.0.2), runs VMs up to vmx-21",
        ),
        (
            "bios",
            {"vcenter": {"template": "/dc-lab/vm/tkg-photon-5-bios"}, "cluster": {"name": "gpu-bios", "workerCount": 1}},
            "gpu-template-efi",
            "the worker template /dc-lab/vm/tkg-photon-5-bios boots with bios firmware, but passthrough GPUs need EFI",
        ),
        (
            "surge",
            {"cluster": {"name": "gpu-surge", "workerCount": 4, "rolloutStrategy": "RollingUpdate"}},
            "gpu-rollout-no-surge",
            "WORKER_ROLLOUT_STRATEGY is RollingUpdate, but the site has 0 spare GPU sets",
        ),
    ],
    ids=["two-gpu-types", "vmx-15", "vmx-22-on-esxi-8.0.2", "bios-template", "rolling-update-without-spare-gpu"],
)
def test_policy_blocks_preview(make_stack, lab, password, name, overrides, policy, message):
    before = labtools.gpu_flags(lab, password)
    stack = make_stack(name, **overrides)

    result, output = preview_output(stack)

    assert result.returncode != 0, output
    assert f"[mandatory]  {policy}" in output
    assert message in output
    assert labtools.gpu_flags(lab, password) == before


def test_edge_stack_without_timeouts_blocked(make_stack, project, lab, password):
    before = labtools.gpu_flags(lab, password)
    stack = make_stack("edge-defaults", cluster={"name": "gpu-edge", "workerCount": 1})
    remove_setting(project, "edge-defaults", "tkg-gpu:edge")

    result, output = preview_output(stack)

    assert result.returncode != 0, output
    assert "[mandatory]  edge-timeouts-explicit" in output
    assert "edge site without an explicit NODE_STARTUP_TIMEOUT (rendered value: 60m)" in output
    assert "edge site without an explicit MHC_FALSE_STATUS_TIMEOUT (rendered value: 40m)" in output
    assert labtools.gpu_flags(lab, password) == before


@pytest.mark.parametrize(
    ("name", "overrides", "fault", "policy", "message"),
    [
        (
            "no-mmio-size",
            {"cluster": {"name": "gpu-no-mmio", "workerCount": 1}},
            {"delete": [["worker", "custom_vmx_keys", "pciPassthru.64bitMMIOSizeGB"]]},
            "mmio-64bit-sized",
            "pciPassthru.64bitMMIOSizeGB is not set, but the worker GPUs (0x10DE:0x20B5) need a power of two of at least 256 GB",
        ),
        (
            "quoted-flag",
            {"cluster": {"name": "gpu-quoted", "workerCount": 1}},
            {"set": [[["variables", "VSPHERE_IGNORE_PCI_DEVICES_ALLOW_LIST"], "true"]]},
            "pci-allow-list-flag",
            "VSPHERE_IGNORE_PCI_DEVICES_ALLOW_LIST is the quoted string 'true', not a YAML boolean",
        ),
        (
            "public-registry",
            {"cluster": {"name": "gpu-registry", "workerCount": 1}, "registry": {"repository": REGISTRY}},
            {"set": [[["variables", "TKG_CUSTOM_IMAGE_REPOSITORY"], "projects.registry.vmware.com/tkg"]]},
            "air-gapped-registry",
            f"TKG_CUSTOM_IMAGE_REPOSITORY is projects.registry.vmware.com/tkg, but the site registry is {REGISTRY}",
        ),
    ],
    ids=["mmio-size-missing", "quoted-allow-list-flag", "other-image-repository"],
)
def test_injected_fault_blocks_preview(make_fault_stack, lab, password, name, overrides, fault, policy, message):
    before = labtools.gpu_flags(lab, password)
    stack = make_fault_stack(name, fault, **overrides)

    result, output = preview_output(stack)

    assert result.returncode != 0, output
    assert f"[mandatory]  {policy}" in output
    assert message in output
    assert labtools.gpu_flags(lab, password) == before


def test_secure_boot_warns_by_default(make_fault_stack, lab, password):
    before = labtools.gpu_flags(lab, password)
    fault = {"set": [[["site", "template", "secure_boot"], True]]}
    stack = make_fault_stack("secure-boot", fault, cluster={"name": "gpu-secure-boot", "workerCount": 1})

    result, output = preview_output(stack)

    assert result.returncode == 0, output
    assert "[advisory]  gpu-template-secure-boot" in output
    assert "has UEFI Secure Boot enabled" in output
    assert labtools.gpu_flags(lab, password) == before


@pytest.mark.parametrize(
    "level",
    ["advisory", {"enforcementLevel": "advisory"}],
    ids=["level-string", "level-object"],
)
def test_pack_config_lowers_policy_to_advisory(make_stack, lab, password, tmp_path, level):
    before = labtools.gpu_flags(lab, password)
    stack = make_stack("surge-advisory", cluster={"name": "gpu-surge", "workerCount": 4, "rolloutStrategy": "RollingUpdate"})
    config_file = tmp_path / "policy-config.json"
    config_file.write_text(json.dumps({"gpu-rollout-no-surge": level}))

    result, output = preview_output(stack, "--policy-pack-config", str(config_file))

    assert result.returncode == 0, output
    assert "[advisory]  gpu-rollout-no-surge" in output
    assert "WORKER_ROLLOUT_STRATEGY is RollingUpdate, but the site has 0 spare GPU sets" in output
    assert "[mandatory]" not in output
    assert labtools.gpu_flags(lab, password) == before


def test_pack_config_rejects_bad_site_registry(make_stack, lab, password, tmp_path):
    stack = make_stack("bad-registry-config", cluster={"name": "gpu-config", "workerCount": 1})
    config_file = tmp_path / "policy-config.json"
    config_file.write_text(json.dumps({"air-gapped-registry": {"siteRegistry": "https://harbor.edge01.example.com"}}))

    result, output = preview_output(stack, "--policy-pack-config", str(config_file))

    assert result.returncode != 0, output
    assert "validating policy config" in output
    assert "air-gapped-registry: siteRegistry: Does not match pattern" in output


def test_compliant_stack_passes_every_policy(make_stack, lab, password):
    stack = make_stack("compliant", cluster={"name": "gpu-compliant"})

    result, output = preview_output(stack)

    assert result.returncode == 0, output
    assert "[mandatory]" not in output
    assert "[advisory]" not in output
