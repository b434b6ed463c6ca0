"""Running the real Pulumi CLI on a stack with a local file backend, as the demo and engine tests do."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

OFFLINE_ENVIRONMENT = {
    "PULUMI_SKIP_UPDATE_CHECK": "true",
    "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
    "PULUMI_DISABLE_REGISTRY_RESOLVE": "true",
}


def use_virtualenv(project_dir: pathlib.Path, venv: pathlib.Path) -> None:
    """Point a copied project's and its policy pack's ``virtualenv`` runtime option at ``venv``."""
    for path in (project_dir / "Pulumi.yaml", project_dir / "policies" / "PulumiPolicy.yaml"):
        document = yaml.safe_load(path.read_text())
        document["runtime"]["options"]["virtualenv"] = str(venv)
        path.write_text(yaml.safe_dump(document))


class PulumiError(RuntimeError):
    def __init__(self, args: Sequence[str], result: subprocess.CompletedProcess[str]) -> None:
        self.result = result
        super().__init__(
            f"`pulumi {' '.join(args)}` exited with {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )


@dataclasses.dataclass
class Stack:
    """One stack of a Pulumi project, run with the CLI found on PATH."""

    project_dir: pathlib.Path
    name: str
    backend_dir: pathlib.Path
    passphrase: str
    environment: Mapping[str, str] = dataclasses.field(default_factory=dict)
    log_path: pathlib.Path | None = None
    """Every command's stdout and stderr are appended here, so tests can scan the logs of a run."""

    def env(self) -> dict[str, str]:
        self.backend_dir.mkdir(parents=True, exist_ok=True)
        return {
            **os.environ,
            **OFFLINE_ENVIRONMENT,
            "PULUMI_BACKEND_URL": f"file://{self.backend_dir}",
            "PULUMI_CONFIG_PASSPHRASE": self.passphrase,
            **self.environment,
        }

    def run(self, *args: str, check: bool = True, stdin: str | None = None, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        full = [*args, "--stack", self.name, "--non-interactive"]
        result = subprocess.run(
            ["pulumi", *full],
            cwd=self.project_dir,
            env=self.env(),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if self.log_path is not None:
            with self.log_path.open("a") as log:
                log.write(f"$ pulumi {' '.join(full)}\n{result.stdout}\n{result.stderr}\n")

        if check and result.returncode != 0:
            raise PulumiError(full, result)

        return result

    def init(self) -> None:
        """Create the stack in the backend, keeping an existing ``Pulumi.<stack>.yaml`` and its salt."""
        result = subprocess.run(
            ["pulumi", "stack", "init", self.name, "--secrets-provider", "passphrase", "--non-interactive"],
            cwd=self.project_dir, env=self.env(), capture_output=True, text=True, check=False,
        )
        if result.returncode != 0 and "already exists" not in result.stderr:
            raise PulumiError(["stack", "init", self.name], result)

    def remove(self) -> None:
        """Remove the stack's state from the backend, keeping its configuration file."""
        subprocess.run(
            ["pulumi", "stack", "rm", self.name, "--force", "--yes", "--preserve-config", "--non-interactive"],
            cwd=self.project_dir, env=self.env(), capture_output=True, text=True, check=False,
        )

    def config_get(self, key: str) -> str:
        return self.run("config", "get", key).stdout.rstrip("\n")

    def set_secret(self, key: str, value: str) -> None:
        """Set a secret from stdin, so the value never appears on a command line."""
        self.run("config", "set", "--secret", key, stdin=value)

    def outputs(self, *, show_secrets: bool = False) -> dict[str, Any]:
        args = ["stack", "output", "--json"] + (["--show-secrets"] if show_secrets else [])
        return json.loads(self.run(*args).stdout or "{}")

    def export(self) -> str:
        return self.run("stack", "export").stdout
