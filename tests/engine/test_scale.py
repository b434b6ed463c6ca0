"""A changed cluster.workerCount scales the existing TKG cluster in place and adds a worker VM."""

from __future__ import annotations

import json
import os
import subprocess

import yaml
from pyVmomi import vim

from components import vsphere
from tests import labtools

CLUSTER = "gpu-scale"
TANZU_CLUSTER_TYPE = "pulumi-python:dynamic/tkggpu:TanzuCluster"


def listed_cluster(lab) -> dict | None:
    result = subprocess.run(
        ["tanzu", "cluster", "list", "--output", "json"],
        env={**os.environ, **lab.environment()},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return {item["name"]: item for item in json.loads(result.stdout or "[]")}.get(CLUSTER)


def worker_vm_names(lab, password) -> list[str]:
    with vsphere.connect(labtools.lab_connection(lab, password)) as service_instance:
        content = service_instance.content
        view = content.viewManager.CreateContainerView(content.rootFolder, [vim.VirtualMachine], True)
        try:
            return sorted(vm.name for vm in view.view if vm.name.startswith(f"{CLUSTER}-md-0-"))
        finally:
            view.DestroyView()


def set_worker_count(stack, project, count: int) -> None:
    """Write a new cluster.workerCount into Pulumi.<stack>.yaml, as make_stack writes the file."""
    path = project / f"Pulumi.{stack.name}.yaml"
    document = yaml.safe_load(path.read_text())
    document["config"]["tkg-gpu:cluster"]["workerCount"] = count
    path.write_text(yaml.safe_dump(document))


def tanzu_cluster_steps(preview_json: str) -> list[dict]:
    steps = json.loads(preview_json).get("steps") or []
    return [step for step in steps if step["urn"].split("::")[-2].endswith(TANZU_CLUSTER_TYPE)]


def test_worker_count_scales_in_place(make_stack, project, lab, password, tmp_path):
    stack = make_stack("scale", cluster={"name": CLUSTER, "workerCount": 1, "hardwareVersion": "vmx-17"})

    stack.run("up", "--yes", "--skip-preview", "--policy-pack", "policies")
    info = listed_cluster(lab)
    assert (info["status"], info["workers"]) == ("running", "1/1")
    [first_worker] = worker_vm_names(lab, password)

    set_worker_count(stack, project, 2)
    preview = stack.run("preview", "--json", "--policy-pack", "policies").stdout
    steps = tanzu_cluster_steps(preview)
    assert [step["op"] for step in steps] == ["update"], steps

    stack.run("up", "--yes", "--skip-preview", "--policy-pack", "policies")
    info = listed_cluster(lab)
    assert (info["status"], info["workers"]) == ("running", "2/2")
    workers = worker_vm_names(lab, password)
    assert len(workers) == 2
    assert first_worker in workers, "the scale replaced the first worker VM"
    assert stack.outputs()["clusterStatus"] == "running"

    stack.run("destroy", "--yes", "--skip-preview")
    assert listed_cluster(lab) is None
    assert worker_vm_names(lab, password) == []

    logs = (tmp_path / "pulumi.log").read_text()
    assert password not in logs, "the vCenter password is in a Pulumi log"
