"""Fixtures for the tanzu test double: a subprocess runner, config files, seeded records, a control plane."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tanzu_double_testdata import BASE_CONFIG, GPU_SETTINGS, TANZU_BIN

# The repository root, so that the vCenter tests can import the lab API (lab.lab) and components.vsphere.
REPOSITORY_ROOT = Path(__file__).resolve().parents[3]
if str(REPOSITORY_ROOT) not in sys.path:
    sys.path.append(str(REPOSITORY_ROOT))


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def clean_env(state_dir: Path) -> dict[str, str]:
    """Environment of the double: the venv first on PATH, no inherited VSPHERE_* or TKG values."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VSPHERE_", "TANZU_DOUBLE_", "CLUSTER_", "WORKER_", "KUBECONFIG"))
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["TANZU_DOUBLE_STATE_DIR"] = str(state_dir)
    env["HOME"] = str(state_dir.parent / "home")
    return env


@pytest.fixture
def tanzu(clean_env: dict[str, str]):
    """Run bin/tanzu with arguments; returns a Result. `env` adds or overrides variables."""

    def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> Result:
        full_env = dict(clean_env)
        full_env.update(env or {})
        completed = subprocess.run(
            [str(TANZU_BIN), *args],
            capture_output=True,
            text=True,
            env=full_env,
            input=stdin if stdin is not None else "",
            timeout=60,
        )
        return Result(completed.returncode, completed.stdout, completed.stderr)

    return run


@pytest.fixture
def write_config(tmp_path: Path):
    """Write a flat config: BASE_CONFIG updated with `changes`; a value of None removes the key."""

    def write(changes: dict[str, object] | None = None, name: str = "cluster.yaml") -> Path:
        data = dict(BASE_CONFIG)
        for key, value in (changes or {}).items():
            if value is None:
                data.pop(key, None)
            else:
                data[key] = value
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        return path

    return write


@pytest.fixture
def seed_cluster(state_dir: Path):
    """Store a cluster record as a finished create would, without vCenter.

    `worker_phases` lists the phase of each worker VM (Running, Failed, Provisioning). With
    `with_vms=False` the machines have no VM id, so a deletion needs no vCenter login.
    """
    from tanzu_double import records
    from tanzu_double.config import FlatConfig
    from tanzu_double.state import StateStore
    from tanzu_double.validation import build_cluster_spec
    from tanzu_double.endpoint import Connection

    def seed(
        name: str = "gpu-test",
        namespace: str = "default",
        changes: dict[str, object] | None = None,
        worker_phases: tuple[str, ...] = ("Running", "Running"),
        phase: str = "running",
        with_vms: bool = True,
    ) -> dict:
        values = dict(BASE_CONFIG, **GPU_SETTINGS)
        values.update(changes or {})
        values["WORKER_MACHINE_COUNT"] = len(worker_phases)
        spec = build_cluster_spec(FlatConfig(values, environ={}), name, namespace, None)
        record = records.new_record(spec, Connection("127.0.0.1:0", True, None), environ={})
        control_plane = records.new_machine(f"{name}-control-plane-aaaaa", "control-plane", None)
        control_plane.update(phase="Running", vmId="vm-1" if with_vms else None)
        record["machines"].append(control_plane)
        for index, worker_phase in enumerate(worker_phases):
            machine = records.new_machine(f"{name}-md-0-w{index}xyz", "worker", "md-0")
            machine.update(phase=worker_phase, vmId=f"vm-{index + 10}" if with_vms else None)
            if worker_phase == "Failed":
                machine.update(reason="PoweringOnFailed", message="No host has a free PCI passthrough device")
            record["machines"].append(machine)
        record["phase"] = phase
        record["createFinished"] = True
        StateStore(str(state_dir)).save(record)
        return record

    return seed


# The processes of one lab Kubernetes control plane (lab/kube.py), all looked up on PATH.
KUBE_COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
CAPI_CRDS = REPOSITORY_ROOT / "lab" / "capi" / "crds.yaml"


@pytest.fixture(scope="session")
def kube_plane(tmp_path_factory):
    """Start one lab control plane with the Cluster API CRDs, shared by all tests of the session.

    The tests use it as both the management and the workload cluster, because the CAPI objects
    and the kwok Nodes of a cluster do not collide. Skipped when a component is missing from PATH.
    """
    missing = [name for name in KUBE_COMPONENTS if shutil.which(name) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not on PATH; `make tools` builds them into ~/.cache/tkg-gpu/bin")
    if not CAPI_CRDS.exists():
        pytest.skip(f"{CAPI_CRDS} is missing")
    from lab.kube import ControlPlane

    plane = ControlPlane("tanzu-test", tmp_path_factory.mktemp("kube-plane"))
    plane.start()
    try:
        plane.install_crds(CAPI_CRDS)
        yield plane
    finally:
        plane.stop()


@pytest.fixture
def plane_env(kube_plane) -> dict[str, str]:
    """Environment that points the double at the test control plane for both roles."""
    return {
        "TANZU_DOUBLE_MANAGEMENT_KUBECONFIG": str(kube_plane.kubeconfig_path),
        "TANZU_DOUBLE_WORKLOAD_KUBECONFIG": str(kube_plane.kubeconfig_path),
        "TANZU_DOUBLE_WORKLOAD_SERVER": kube_plane.server,
        "TANZU_DOUBLE_DELETE_DELAY_SECONDS": "0",
    }
