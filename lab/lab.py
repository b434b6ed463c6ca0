"""The local lab: the GPU vCenter simulator, two Kubernetes control planes and the tanzu double's state.

Every server binds 127.0.0.1 only. The "management" plane replaces a TKG management cluster: it serves the
Cluster API kinds and runs the kubeadm control-plane controller Deployment. The "workload" plane replaces
the workload cluster that the program deploys the GPU Operator to. kwok plays the kubelet of their fake nodes.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import pathlib
import ssl
import subprocess
import sys
import time
import urllib.request
from typing import Any

from lab.kube import FAKE_NODE_ANNOTATION, ControlPlane, LabError, ProcessRecord, find_tool, start_with_ready_line, stop_process, wait_for

__all__ = ["Lab", "LabError", "LabSettings", "SWITCHES", "kubernetes_environment", "set_switch", "wait_for"]

ROOT = pathlib.Path(__file__).resolve().parent.parent
TANZU_BIN = ROOT / "lab" / "tanzu" / "bin"
CAPI_DIR = ROOT / "lab" / "capi"
START_TIMEOUT_SECONDS = 60
PLANE_NAMES = ("management", "workload")
MANAGEMENT_NODE = "management-control-plane"
SWITCHES = ("cuda-fail", "workers-without-gpu")
"""Names accepted by ``Lab.set_switch`` and ``python -m lab switch``."""


@dataclasses.dataclass(frozen=True)
class LabSettings:
    port: int = 0
    """Port of the vCenter simulator; 0 picks a free one."""
    hosts: int = 2
    gpus: str = "A100-PCIE-80GB:2"
    """GPUs per host, as ``MODEL:COUNT[,MODEL:COUNT]``."""
    no_rebind: tuple[str, ...] = ()
    """Hosts whose passthrough changes wait for a reboot."""
    username: str = "administrator@vsphere.local"
    kubernetes: bool = True
    """Start the management and workload Kubernetes control planes after the simulator."""


def progress(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def set_switch(name: str, on: bool, *, tanzu_state_dir: pathlib.Path, workload: ControlPlane | None) -> None:
    """Turn one of the lab's failure switches on or off (see SWITCHES).

    ``cuda-fail``: cuda-vector-add Pods on the workload plane started from now on end Failed with exit
    code 1 and a log without "Test PASSED". ``workers-without-gpu``: the file
    ``<tanzu state dir>/switches/workers-without-gpu`` exists while on, and the tanzu double then creates
    worker nodes without nvidia.com/gpu.
    """
    if name == "cuda-fail":
        if workload is None:
            raise LabError("the cuda-fail switch needs the workload control plane, which this lab did not start")
        workload.set_cuda_fail(on)
    elif name == "workers-without-gpu":
        switch_file = tanzu_state_dir / "switches" / name
        if on:
            switch_file.parent.mkdir(parents=True, exist_ok=True)
            switch_file.touch()
        else:
            switch_file.unlink(missing_ok=True)
    else:
        raise LabError(f"unknown switch {name!r}; expected one of: {', '.join(SWITCHES)}")


class Lab:
    """Start and stop the simulator; the caller supplies the password, which never leaves memory or env."""

    def __init__(self, state_dir: pathlib.Path, password: str, settings: LabSettings | None = None) -> None:
        self.state_dir = state_dir
        self.settings = settings or LabSettings()
        self._password = password
        self._process: subprocess.Popen[bytes] | None = None
        self._vcsim_record: ProcessRecord | None = None
        self.planes: dict[str, ControlPlane] = {}
        """Started control planes by name ("management", "workload"), in start order."""
        self.url = ""
        self.thumbprint = ""
        self.server = ""

    @property
    def tanzu_state_dir(self) -> pathlib.Path:
        return self.state_dir / "tanzu"

    @property
    def management(self) -> ControlPlane | None:
        return self.planes.get("management")

    @property
    def workload(self) -> ControlPlane | None:
        return self.planes.get("workload")

    def start(self) -> Lab:
        """Start the simulator, then the control planes; on failure stop what started and raise LabError."""
        try:
            self._start_simulator()
            if self.settings.kubernetes:
                for name in PLANE_NAMES:
                    self._start_plane(name)
        except BaseException:
            self.stop()
            raise

        return self

    def _start_plane(self, name: str) -> None:
        progress(f"starting the {name} control plane")
        started = time.monotonic()
        plane = ControlPlane(name, self.state_dir / "kube" / name)
        # Registered before start so that stop() covers a plane whose start failed half way.
        self.planes[name] = plane
        plane.start()
        if name == "management":
            self._install_management_objects(plane)
        progress(f"{name} control plane ready at {plane.server} after {time.monotonic() - started:.1f} s")

    def _install_management_objects(self, plane: ControlPlane) -> None:
        """Install the Cluster API kinds, the kubeadm control-plane controller Deployment and a node for its Pod.

        The Deployment is created with field manager "kapp", as kapp-controller applies TKG's packages.
        """
        import kubernetes.client

        plane.install_crds(CAPI_DIR / "crds.yaml")
        with plane.api_client() as client:
            kubernetes.client.CoreV1Api(client).create_node(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": MANAGEMENT_NODE,
                        "annotations": {FAKE_NODE_ANNOTATION: "fake"},
                        "labels": {"node-role.kubernetes.io/control-plane": ""},
                    },
                }
            )
        plane.create_objects(CAPI_DIR / "kubeadm-control-plane-controller.yaml", field_manager="kapp")

    def _start_simulator(self) -> None:
        executable = find_tool("vcsim-gpu")

        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.tanzu_state_dir.mkdir(exist_ok=True)
        command = [
            executable,
            "--listen", f"127.0.0.1:{self.settings.port}",
            "--hosts", str(self.settings.hosts),
            "--gpus", self.settings.gpus,
            "--username", self.settings.username,
        ]
        if self.settings.no_rebind:
            command += ["--no-rebind", ",".join(self.settings.no_rebind)]

        self._process, self._vcsim_record, banner = start_with_ready_line(
            "vcsim-gpu",
            command,
            self.state_dir / "vcsim-gpu.log",
            {**os.environ, "VCSIM_GPU_PASSWORD": self._password},
            START_TIMEOUT_SECONDS,
        )
        self.url = banner["url"]
        self.thumbprint = banner.get("thumbprint", "")
        self.server = self.url.split("://", 1)[1].split("/", 1)[0]

    def stop(self) -> None:
        """Stop the control planes in reverse start order, then the simulator."""
        try:
            for name in reversed(list(self.planes)):
                self.planes.pop(name).stop()
        finally:
            if self._vcsim_record is not None and self._process is not None:
                stop_process(self._vcsim_record, self._process)
                self._vcsim_record = None

    def records(self) -> list[ProcessRecord]:
        """Return the processes of the lab that have not been stopped, in start order, for ``.lab/lab.json``."""
        records = [self._vcsim_record] if self._vcsim_record else []
        for plane in self.planes.values():
            records += plane.records
        return records

    def set_switch(self, name: str, on: bool) -> None:
        set_switch(name, on, tanzu_state_dir=self.tanzu_state_dir, workload=self.workload)

    def __enter__(self) -> Lab:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def environment(self) -> dict[str, str]:
        """Return the variables a Pulumi run against this lab needs in its environment.

        The tanzu double's vCenter login replaces the credentials a management cluster keeps, and it
        exists only in the environment of the lab's child processes.
        """
        environment = {
            "TANZU_DOUBLE_STATE_DIR": str(self.tanzu_state_dir),
            "TANZU_DOUBLE_VSPHERE_USERNAME": self.settings.username,
            "TANZU_DOUBLE_VSPHERE_PASSWORD": self._password,
            "PATH": f"{TANZU_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        if self.management is not None and self.workload is not None:
            environment |= kubernetes_environment(self.management, self.workload)
        return environment

    def _control(self, method: str, path: str) -> Any:
        """Call the simulator's /lab/ control endpoint (loopback, its self-signed certificate)."""
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        request = urllib.request.Request(f"https://{self.server}/lab/{path}", method=method)
        token = base64.b64encode(f"{self.settings.username}:{self._password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            body = response.read()

        return json.loads(body) if body else None

    def request_count(self) -> int:
        return int(self._control("GET", "requests")["requests"])

    def reset_request_count(self) -> None:
        self._control("POST", "requests/reset")

    def reboot_host(self, name: str) -> None:
        self._control("POST", f"hosts/{name}/reboot")

    def hosts(self) -> Any:
        return self._control("GET", "hosts")


def kubernetes_environment(management: ControlPlane, workload: ControlPlane) -> dict[str, str]:
    """Return the variables that point the tanzu double and the program at the two control planes."""
    return {
        "TANZU_DOUBLE_MANAGEMENT_KUBECONFIG": str(management.kubeconfig_path),
        "TANZU_DOUBLE_WORKLOAD_KUBECONFIG": str(workload.kubeconfig_path),
        "TANZU_DOUBLE_WORKLOAD_SERVER": workload.server,
        "TKG_GPU_LAB_MANAGEMENT_KUBECONFIG": str(management.kubeconfig_path),
    }

