"""The local lab: the GPU vCenter simulator and the tanzu test double's state, on 127.0.0.1 only."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import pathlib
import select
import shutil
import signal
import ssl
import subprocess
import time
import urllib.request
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parent.parent
TANZU_BIN = ROOT / "lab" / "tanzu" / "bin"
START_TIMEOUT_SECONDS = 60


class LabError(RuntimeError):
    """The lab could not start, or one of its processes failed."""


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


class Lab:
    """Start and stop the simulator; the caller supplies the password, which never leaves memory or env."""

    def __init__(self, state_dir: pathlib.Path, password: str, settings: LabSettings | None = None) -> None:
        self.state_dir = state_dir
        self.settings = settings or LabSettings()
        self._password = password
        self._process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.thumbprint = ""
        self.server = ""

    @property
    def tanzu_state_dir(self) -> pathlib.Path:
        return self.state_dir / "tanzu"

    def start(self) -> Lab:
        executable = shutil.which("vcsim-gpu")
        if executable is None:
            raise LabError("vcsim-gpu not found on PATH; run `make tools` first")

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

        log = open(self.state_dir / "vcsim-gpu.log", "ab")  # noqa: SIM115 - kept open for the child's lifetime
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "VCSIM_GPU_PASSWORD": self._password},
            start_new_session=True,
        )
        log.close()
        self._read_banner()

        return self

    def _read_banner(self) -> None:
        """Read the simulator's ready line, killing it when none arrives within the start timeout."""
        assert self._process is not None and self._process.stdout is not None
        ready, _writable, _errors = select.select([self._process.stdout], [], [], START_TIMEOUT_SECONDS)
        if not ready:
            self._process.kill()
            self._process.wait()
            raise LabError(
                f"vcsim-gpu printed no ready line within {START_TIMEOUT_SECONDS} s; see {self.state_dir / 'vcsim-gpu.log'}"
            )

        line = self._process.stdout.readline()
        if not line:
            self._process.wait(timeout=START_TIMEOUT_SECONDS)
            raise LabError(
                f"vcsim-gpu exited with code {self._process.returncode} before serving; see {self.state_dir / 'vcsim-gpu.log'}"
            )

        banner = json.loads(line)
        self.url = banner["url"]
        self.thumbprint = banner.get("thumbprint", "")
        self.server = self.url.split("://", 1)[1].split("/", 1)[0]

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return

        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

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
        return {
            "TANZU_DOUBLE_STATE_DIR": str(self.tanzu_state_dir),
            "TANZU_DOUBLE_VSPHERE_USERNAME": self.settings.username,
            "TANZU_DOUBLE_VSPHERE_PASSWORD": self._password,
            "PATH": f"{TANZU_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }

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


def wait_for(condition, *, timeout: float, interval: float = 0.5, message: str = "condition") -> None:
    """Poll ``condition`` until it returns true, raising LabError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout:.0f} s waiting for {message}")

        time.sleep(interval)
