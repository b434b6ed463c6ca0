"""Bad site configurations from tests/corpus stop `pulumi preview --policy-pack policies` against the lab.

Each case is merged into the engine tests' lab configuration, written to the stack file as an operator
would write it, and previewed with the real engine. The preview must fail, name the key, and leave every
GPU's passthrough flags as they were.
"""

from __future__ import annotations

import pathlib
import secrets

import pytest
import yaml

from components import config, gpu_catalog
from tests import labtools
from tests.engine.conftest import LAB_GPUS, site_config
from tests.unit.test_corpus import CASES, CorpusCase, merge_case

# One case per section, and two whose failure comes from the lab's inventory (2 hosts, each with
# 2 A100 PCIe 80GB GPUs, 1 T4 and 512 GiB of memory).
ENGINE_CASES = (
    "site-kind-datacentre",
    "vcenter-thumbprint-sha256",
    "gpu-vendor-device-pci-address",
    "cluster-hardware-version-no-prefix",
    "edge-node-startup-bare-number",
    "tanzu-create-timeout-short",
    "gpu-t4-two-per-worker",
    "cluster-worker-memory-above-host",
)
LAB_HOSTS = 2
LAB_HOST_MEMORY_GIB = 512
CASES_BY_NAME = {case.name: case for case in CASES}


def lab_gpus_per_host() -> dict[tuple[int, int], int]:
    """Return the GPUs on each lab host by vendor:device pair, from the engine conftest's LAB_GPUS."""
    result = {}
    for item in LAB_GPUS.split(","):
        key, count = item.split(":")
        model = gpu_catalog.find_model(key)
        assert model is not None, f"LAB_GPUS names {key}, which is not in the catalogue"
        result[(gpu_catalog.NVIDIA_VENDOR_ID, model.device_ids[0])] = int(count)

    return result


def assert_lab_reproduces(case: CorpusCase) -> None:
    """Fail when the case's inventory differs from the lab, because then the preview would test another site."""
    inventory = case.inventory
    assert "computeResource" not in inventory, "every lab host is in gpu-cluster"
    assert inventory.get("hosts", LAB_HOSTS) == LAB_HOSTS
    assert inventory.get("hostMemoryGib", LAB_HOST_MEMORY_GIB) == LAB_HOST_MEMORY_GIB
    if "pair" in inventory:
        pair = gpu_catalog.parse_pci_pair(inventory["pair"])
        assert lab_gpus_per_host().get(pair) == inventory.get("gpusPerHost", 2)


def write_stack_settings(path: pathlib.Path, settings: dict) -> None:
    """Replace the ``tkg-gpu:`` settings of a stack file, keeping the encrypted password and the salt."""
    document = yaml.safe_load(path.read_text())
    password_key = f"{config.NAMESPACE}:{config.PASSWORD_KEY}"
    kept = {key: value for key, value in document["config"].items() if key == password_key}
    document["config"] = {**{f"{config.NAMESPACE}:{key}": value for key, value in settings.items()}, **kept}
    path.write_text(yaml.safe_dump(document))


@pytest.mark.parametrize("name", ENGINE_CASES)
def test_corpus_case_fails_preview(make_stack, project, lab, password, name):
    case = CASES_BY_NAME[name]
    assert_lab_reproduces(case)
    before = labtools.gpu_flags(lab, password)
    stack_name = f"corpus-{name}"
    stack = make_stack(stack_name)
    settings = merge_case(site_config(lab), case, f"sentinel-{secrets.token_hex(12)}")
    write_stack_settings(project / f"Pulumi.{stack_name}.yaml", settings)

    result = stack.run("preview", "--policy-pack", "policies", check=False)

    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert f"{case.key}:" in output
    assert case.message in output
    assert password not in output
    assert labtools.gpu_flags(lab, password) == before
