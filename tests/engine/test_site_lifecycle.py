"""Preview, up, idempotent up, drift repair and destroy of a site stack against the lab."""

from __future__ import annotations

import base64
import json
import os
import subprocess

from lab.lab import wait_for
from tests import labtools

A100_ADDRESSES = ("0000:3b:00.0", "0000:5e:00.0")


def tanzu(lab, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **lab.environment()}
    return subprocess.run(["tanzu", *args], env=env, capture_output=True, text=True, check=False)


def listed_clusters(lab) -> dict[str, dict]:
    result = tanzu(lab, "cluster", "list", "--output", "json")
    assert result.returncode == 0, result.stderr
    return {item["name"]: item for item in json.loads(result.stdout or "[]")}


def a100_flags(lab, password):
    return {key: value for key, value in labtools.gpu_flags(lab, password).items() if key[1] in A100_ADDRESSES}


def test_site_lifecycle(make_stack, lab, password, tmp_path):
    """Up creates passthrough and the cluster, a second up changes nothing, drift is found and repaired,
    destroy restores the hosts, and the password is in neither the state nor any log."""
    before = labtools.gpu_flags(lab, password)
    stack = make_stack("lifecycle", cluster={"name": "gpu-life", "workerCount": 2, "hardwareVersion": "vmx-17"})

    preview = stack.run("preview", "--policy-pack", "policies").stdout
    assert "tkg-gpu:index:GpuPassthroughHost" in preview
    assert "esxi-01.lab.local-0000-3b-00-0" in preview
    assert "gpu-life-cluster" in preview
    assert a100_flags(lab, password) == {key: (False, False) for key in a100_flags(lab, password)}

    stack.run("up", "--yes", "--skip-preview", "--policy-pack", "policies")
    assert all(flags == (True, True) for flags in a100_flags(lab, password).values())
    assert listed_clusters(lab)["gpu-life"]["status"] == "running"
    outputs = stack.outputs()
    assert outputs["clusterName"] == "gpu-life"
    assert outputs["clusterStatus"] == "running"

    second = stack.run("up", "--yes", "--skip-preview", "--expect-no-changes", "--policy-pack", "policies", check=False)
    assert second.returncode == 0, second.stdout + second.stderr

    # Drift: one GPU switched off in vCenter, and the cluster deleted through the tanzu CLI.
    labtools.set_flag_directly(lab, password, "esxi-02.lab.local", "0000:5e:00.0", False)
    assert tanzu(lab, "cluster", "delete", "gpu-life", "--yes").returncode == 0
    wait_for(lambda: "gpu-life" not in listed_clusters(lab), timeout=60, message="the cluster deletion")

    refresh = stack.run("refresh", "--preview-only", "--diff").stdout
    assert "[id=esxi-02.lab.local/0000:5e:00.0]" in refresh
    assert "passthru_enabled: true => false" in refresh
    assert "tkggpu:TanzuCluster: (delete)" in refresh
    assert "[id=default/gpu-life]" in refresh

    stack.run("refresh", "--yes", "--skip-preview")
    stack.run("up", "--yes", "--skip-preview", "--policy-pack", "policies")
    assert labtools.gpu_flags(lab, password)[("esxi-02.lab.local", "0000:5e:00.0")] == (True, True)
    assert listed_clusters(lab)["gpu-life"]["status"] == "running"

    state = stack.export()
    stack.run("destroy", "--yes", "--skip-preview")
    assert "gpu-life" not in listed_clusters(lab)
    assert labtools.gpu_flags(lab, password) == before

    assert password not in state, "the vCenter password is in the exported state"
    logs = (tmp_path / "pulumi.log").read_text()
    assert password not in logs, "the vCenter password is in a Pulumi log"
    encoded = base64.b64encode(password.encode())
    for path in [*tmp_path.rglob("*"), *lab.state_dir.rglob("*"), *stack.project_dir.rglob("Pulumi.*.yaml")]:
        if path.is_file():
            content = path.read_bytes()
            assert password.encode() not in content, f"the vCenter password is in {path}"
            assert encoded not in content, f"the base64-encoded vCenter password is in {path}"
