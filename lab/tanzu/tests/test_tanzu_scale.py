"""`tanzu cluster scale` without a vCenter: flags, counting rules, scale-down and the guards.

Scale-ups that build VMs are covered in test_tanzu_vcenter.py; here they only reach the
credential and connection checks, which must leave the cluster unchanged.
"""

from __future__ import annotations

import json
import os
import time

import pytest
from tanzu_double_testdata import TEST_PASSWORD


def record_of(state_dir, name: str = "gpu-test", namespace: str = "default") -> dict:
    return json.loads((state_dir / "clusters" / namespace / f"{name}.json").read_text())


def save_record(state_dir, record: dict) -> None:
    from tanzu_double.state import StateStore

    StateStore(str(state_dir)).save(record)


def listed(tanzu, name: str = "gpu-test") -> dict:
    result = tanzu("cluster", "list", "-o", "json")
    assert result.returncode == 0, result.stderr
    return {item["name"]: item for item in json.loads(result.stdout)}[name]


def pool_replicas(tanzu) -> dict[str, int]:
    result = tanzu("cluster", "node-pool", "list", "gpu-test", "-o", "json")
    assert result.returncode == 0, result.stderr
    return {item["metadata"]["name"]: item["spec"]["replicas"] for item in json.loads(result.stdout)}


def add_pool(tanzu, tmp_path, name: str, replicas: int) -> None:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\nreplicas: {replicas}\n")
    result = tanzu("cluster", "node-pool", "set", "gpu-test", "-f", str(path), "--base-machine-deployment", "md-0")
    assert result.returncode == 0, result.stderr


class TestScaleFlags:
    def test_help_lists_flags(self, tanzu):
        result = tanzu("cluster", "scale", "--help")
        assert result.returncode == 0
        for flag in (
            "-w, --worker-machine-count int32",
            "-c, --controlplane-machine-count int32",
            "-p, --node-pool-name string",
            "-n, --namespace string",
        ):
            assert flag in result.stdout

    def test_needs_cluster_name(self, tanzu):
        result = tanzu("cluster", "scale", "-w", "2")
        assert result.returncode == 1
        assert result.stderr == "Error: accepts 1 arg(s), received 0\n"

    def test_needs_a_count(self, tanzu):
        result = tanzu("cluster", "scale", "gpu-test", "-p", "md-0")
        assert result.returncode == 1
        assert "invalid machine counts" in result.stderr
        assert "--worker-machine-count" in result.stderr

    def test_counts_below_one_rejected(self, tanzu):
        result = tanzu("cluster", "scale", "gpu-test", "-w", "0", "-c", "-1")
        assert result.returncode == 1
        assert "invalid machine counts" in result.stderr

    @pytest.mark.parametrize("count", ["2", "4"])
    def test_even_control_plane_rejected(self, tanzu, count):
        result = tanzu("cluster", "scale", "gpu-test", "--controlplane-machine-count", count)
        assert result.returncode == 1
        assert f"invalid control plane machine count {count}" in result.stderr
        assert "odd" in result.stderr

    def test_non_integer_count(self, tanzu):
        result = tanzu("cluster", "scale", "gpu-test", "-w", "two")
        assert result.returncode == 1
        assert 'invalid argument "two" for "-w, --worker-machine-count" flag' in result.stderr

    def test_count_beyond_int32(self, tanzu):
        result = tanzu("cluster", "scale", "gpu-test", "-w", "2147483648")
        assert result.returncode == 1
        assert "value out of range" in result.stderr

    def test_flags_checked_before_state_dir(self, tanzu):
        result = tanzu("cluster", "scale", "gpu-test", "-c", "2", env={"TANZU_DOUBLE_STATE_DIR": ""})
        assert result.returncode == 1
        assert "invalid control plane machine count" in result.stderr
        assert "TANZU_DOUBLE_STATE_DIR" not in result.stderr


class TestScaleTargets:
    def test_missing_cluster_named(self, tanzu):
        result = tanzu("cluster", "scale", "no-such-cluster", "-w", "2")
        assert result.returncode == 1
        assert result.stderr == "Error: cluster 'no-such-cluster' not found in namespace 'default'\n"

    def test_namespace_flag(self, tanzu, seed_cluster):
        seed_cluster(namespace="gpu-team", with_vms=False)
        missing = tanzu("cluster", "scale", "gpu-test", "-w", "1")
        assert "not found in namespace 'default'" in missing.stderr
        result = tanzu("cluster", "scale", "gpu-test", "-w", "1", "-n", "gpu-team")
        assert result.returncode == 0, result.stderr

    def test_missing_node_pool(self, tanzu, seed_cluster):
        seed_cluster()
        result = tanzu("cluster", "scale", "gpu-test", "-w", "1", "-p", "md-9")
        assert result.returncode == 1
        assert "node pool 'md-9' not found in cluster 'gpu-test'" in result.stderr

    def test_deleting_cluster_rejected(self, tanzu, seed_cluster):
        seed_cluster(phase="deleting")
        result = tanzu("cluster", "scale", "gpu-test", "-w", "1", env={"TANZU_DOUBLE_DELETE_DELAY_SECONDS": "600"})
        assert result.returncode == 1
        assert "is being deleted" in result.stderr

    def test_running_create_rejected(self, tanzu, seed_cluster, state_dir):
        record = seed_cluster()
        record.update(phase="creating", createFinished=False, creatorPid=os.getpid())
        save_record(state_dir, record)
        result = tanzu("cluster", "scale", "gpu-test", "-w", "1")
        assert result.returncode == 1
        assert "still being created" in result.stderr

    def test_running_scale_rejected(self, tanzu, seed_cluster, state_dir):
        record = seed_cluster()
        record["scalePid"] = os.getpid()
        save_record(state_dir, record)
        result = tanzu("cluster", "scale", "gpu-test", "-w", "1")
        assert result.returncode == 1
        assert f"already being scaled by process {os.getpid()}" in result.stderr


class TestScaleDown:
    def test_queues_vm_and_updates_counts(self, tanzu, seed_cluster, state_dir):
        seed_cluster(worker_phases=("Running", "Running"))
        result = tanzu("cluster", "scale", "gpu-test", "--worker-machine-count", "1")
        assert result.returncode == 0, result.stderr
        assert result.stdout == ""
        assert result.stderr.rstrip("\n").endswith("Workload cluster 'gpu-test' is being scaled")
        assert "node pool 'md-0': 2 -> 1 machines" in result.stderr

        record = record_of(state_dir)
        workers = [machine for machine in record["machines"] if machine["role"] == "worker"]
        assert len(workers) == 1
        assert len(record["pendingVmDeletions"]) == 1
        assert record["pendingVmDeletions"][0] in ("vm-10", "vm-11")
        assert record["topology"]["workers"]["machineDeployments"][0]["replicas"] == 1

        info = listed(tanzu)
        assert (info["status"], info["workers"]) == ("running", "1/1")
        get = tanzu("cluster", "get", "gpu-test")
        assert get.stdout.splitlines()[1].split()[2:5] == ["running", "1/1", "1/1"]

    def test_pending_vm_waits_for_credentials(self, tanzu, seed_cluster, state_dir):
        seed_cluster()
        assert tanzu("cluster", "scale", "gpu-test", "-w", "1").returncode == 0
        result = tanzu("cluster", "list", "-o", "json")
        assert "TANZU_DOUBLE_VSPHERE_USERNAME" in result.stderr
        assert len(record_of(state_dir)["pendingVmDeletions"]) == 1

    def test_failed_machine_goes_first(self, tanzu, seed_cluster, state_dir):
        seed_cluster(worker_phases=("Running", "Failed"), phase="createStalled")
        assert listed(tanzu)["status"] == "createStalled"
        result = tanzu("cluster", "scale", "gpu-test", "-w", "1")
        assert result.returncode == 0, result.stderr
        assert record_of(state_dir)["pendingVmDeletions"] == ["vm-11"]
        info = listed(tanzu)
        assert (info["status"], info["workers"]) == ("running", "1/1")

    def test_spread_over_pools(self, tanzu, seed_cluster, tmp_path):
        seed_cluster(worker_phases=("Running", "Running", "Running"))
        add_pool(tanzu, tmp_path, "gpu-b", 2)
        assert pool_replicas(tanzu) == {"md-0": 3, "gpu-b": 2}
        result = tanzu("cluster", "scale", "gpu-test", "-w", "3")
        assert result.returncode == 0, result.stderr
        assert pool_replicas(tanzu) == {"md-0": 2, "gpu-b": 1}
        assert listed(tanzu)["workers"] == "3/3"

    def test_count_below_pool_count_rejected(self, tanzu, seed_cluster, tmp_path, state_dir):
        seed_cluster()
        add_pool(tanzu, tmp_path, "gpu-b", 1)
        before = record_of(state_dir)
        result = tanzu("cluster", "scale", "gpu-test", "-w", "1")
        assert result.returncode == 1
        assert "invalid worker machine count 1" in result.stderr
        assert "2 node pools" in result.stderr
        assert record_of(state_dir)["machines"] == before["machines"]

    def test_named_pool_only(self, tanzu, seed_cluster, tmp_path, state_dir):
        seed_cluster()
        add_pool(tanzu, tmp_path, "gpu-b", 3)
        result = tanzu("cluster", "scale", "gpu-test", "-w", "1", "-p", "gpu-b")
        assert result.returncode == 0, result.stderr
        assert pool_replicas(tanzu) == {"md-0": 2, "gpu-b": 1}
        # The removed gpu-b machines were simulated, so no VM is queued.
        assert record_of(state_dir)["pendingVmDeletions"] == []

    def test_pool_name_ignored_without_worker_count(self, tanzu, seed_cluster):
        seed_cluster()
        result = tanzu("cluster", "scale", "gpu-test", "-c", "1", "-p", "md-9")
        assert result.returncode == 0, result.stderr
        assert "Workload cluster 'gpu-test' is being scaled" in result.stderr

    def test_control_plane_loses_oldest(self, tanzu, seed_cluster, state_dir):
        record = seed_cluster()
        from tanzu_double import records

        record["topology"]["controlPlane"]["replicas"] = 3
        for index, created in enumerate(("2024-01-01T00:00:02Z", "2024-01-01T00:00:03Z")):
            machine = records.new_machine(f"gpu-test-control-plane-c{index}", "control-plane", None)
            machine.update(phase="Running", vmId=f"vm-{index + 2}", createdAt=created)
            record["machines"].append(machine)
        record["machines"][0]["createdAt"] = "2024-01-01T00:00:01Z"
        save_record(state_dir, record)
        assert listed(tanzu)["controlplane"] == "3/3"

        result = tanzu("cluster", "scale", "gpu-test", "-c", "1")
        assert result.returncode == 0, result.stderr
        assert "control plane: 3 -> 1 machines" in result.stderr
        assert sorted(record_of(state_dir)["pendingVmDeletions"]) == ["vm-1", "vm-2"]
        assert listed(tanzu)["controlplane"] == "1/1"

    def test_unchanged_count_is_no_error(self, tanzu, seed_cluster, state_dir):
        seed_cluster()
        result = tanzu("cluster", "scale", "gpu-test", "-w", "2")
        assert result.returncode == 0, result.stderr
        assert record_of(state_dir)["pendingVmDeletions"] == []
        assert listed(tanzu)["workers"] == "2/2"


class TestScaleUpGuards:
    def test_needs_vcenter_login(self, tanzu, seed_cluster, state_dir):
        seed_cluster()
        before = record_of(state_dir)
        result = tanzu("cluster", "scale", "gpu-test", "-w", "3")
        assert result.returncode == 1
        assert "TANZU_DOUBLE_VSPHERE_USERNAME" in result.stderr
        assert record_of(state_dir)["machines"] == before["machines"]
        assert listed(tanzu)["workers"] == "2/2"

    def test_unreachable_vcenter_leaves_cluster(self, tanzu, seed_cluster, state_dir):
        seed_cluster()
        before = record_of(state_dir)
        login = {"TANZU_DOUBLE_VSPHERE_USERNAME": "administrator@vsphere.local", "TANZU_DOUBLE_VSPHERE_PASSWORD": TEST_PASSWORD}
        result = tanzu("cluster", "scale", "gpu-test", "-c", "3", env=login)
        assert result.returncode == 1
        assert "cannot connect to vCenter 127.0.0.1:0" in result.stderr
        assert TEST_PASSWORD not in result.stderr + result.stdout
        after = record_of(state_dir)
        assert after["machines"] == before["machines"]
        assert after["topology"]["controlPlane"]["replicas"] == 1
        assert "scalePid" not in after

    def test_deletion_waits_for_running_scale(self, tanzu, seed_cluster, state_dir):
        record = seed_cluster(with_vms=False)
        record.update(phase="deleting", deleteRequestedEpoch=time.time() - 60, scalePid=os.getpid())
        save_record(state_dir, record)
        delay = {"TANZU_DOUBLE_DELETE_DELAY_SECONDS": "0"}
        [info] = json.loads(tanzu("cluster", "list", "-o", "json", env=delay).stdout)
        assert info["status"] == "deleting"

        record["scalePid"] = None
        save_record(state_dir, record)
        assert tanzu("cluster", "list", "-o", "json", env=delay).stdout == "[]"
