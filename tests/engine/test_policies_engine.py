"""Policy violations stop `pulumi preview --policy-pack policies`, and nothing changes in the lab."""

from __future__ import annotations

import pytest

from tests import labtools


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
    ],
    ids=["two-gpu-types", "vmx-15"],
)
def test_policy_blocks_preview(make_stack, lab, password, name, overrides, policy, message):
    before = labtools.gpu_flags(lab, password)
    stack = make_stack(name, **overrides)

    result = stack.run("preview", "--policy-pack", "policies", check=False)

    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert policy in output
    assert message in output
    assert labtools.gpu_flags(lab, password) == before
