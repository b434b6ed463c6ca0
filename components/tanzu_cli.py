"""Calls of the tanzu CLI's cluster plugin, with the config file written 0600 and removed afterwards.

Only stdout is parsed (tables, ``-o json``); stderr carries progress and errors and goes into error
messages after the password is masked.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import Any

from components.i18n import _

ERROR_TAIL_LINES = 20
POLL_INTERVAL_SECONDS = 1.0


class TanzuError(RuntimeError):
    """A tanzu CLI call failed; the message contains the command (never a secret), exit code and stderr tail."""


def _mask(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "******")

    return text


def run(cli: str, args: Sequence[str], *, timeout: float, secrets: Sequence[str] = ()) -> str:
    """Run ``tanzu ARGS`` and return its stdout; raise TanzuError on a non-zero exit or a timeout."""
    executable = shutil.which(cli)
    if executable is None:
        raise TanzuError(
            _("tanzu CLI {cli!r} not found on PATH; install it or set tkg-gpu:tanzu.cli to its path").format(cli=cli)
        )

    command = " ".join(["tanzu", *args])
    try:
        completed = subprocess.run(
            [executable, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise TanzuError(_("`{command}` timed out after {seconds:.0f} s").format(command=command, seconds=timeout)) from None

    if completed.returncode != 0:
        tail = "\n".join(completed.stderr.strip().splitlines()[-ERROR_TAIL_LINES:])
        raise TanzuError(
            _("`{command}` failed with exit code {code}:\n{stderr}").format(
                command=command, code=completed.returncode, stderr=_mask(tail, secrets)
            )
        )

    return completed.stdout


@contextlib.contextmanager
def private_directory() -> Iterator[str]:
    """Yield a new directory only the current user can enter (``mkdtemp`` makes it 0700); remove it afterwards."""
    directory = tempfile.mkdtemp(prefix="tkg-gpu-")
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def private_config_file(content: str) -> Iterator[str]:
    """Write ``content`` to a file only the current user can read, and remove it when the block ends."""
    with private_directory() as directory:
        path = os.path.join(directory, "cluster-config.yaml")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(content)
        yield path


def admin_kubeconfig(cli: str, name: str, namespace: str, *, timeout: float = 120) -> str:
    """Return the cluster's admin kubeconfig (``kubeconfig get --admin``), exported to a private file that is removed."""
    with private_directory() as directory:
        path = os.path.join(directory, "kubeconfig")
        run(
            cli,
            ["cluster", "kubeconfig", "get", name, "--admin", "--namespace", namespace, "--export-file", path],
            timeout=timeout,
        )
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.read()
        except FileNotFoundError:
            raise TanzuError(
                _("`tanzu cluster kubeconfig get {name} --admin` wrote no kubeconfig file").format(name=name)
            ) from None


def list_clusters(cli: str, namespace: str, *, timeout: float = 120) -> list[dict[str, Any]]:
    output = run(cli, ["cluster", "list", "--namespace", namespace, "--output", "json"], timeout=timeout)
    try:
        clusters = json.loads(output or "[]")
    except json.JSONDecodeError as error:
        raise TanzuError(_("`tanzu cluster list -o json` printed invalid JSON: {error}").format(error=error)) from None

    return clusters if isinstance(clusters, list) else []


def find_cluster(cli: str, name: str, namespace: str) -> dict[str, Any] | None:
    return next((item for item in list_clusters(cli, namespace) if item.get("name") == name), None)


def wait_until_gone(cli: str, name: str, namespace: str, *, timeout: float) -> None:
    """Poll ``cluster list`` until the cluster disappears, because ``cluster delete`` returns at once."""
    deadline = time.monotonic() + timeout
    while find_cluster(cli, name, namespace) is not None:
        if time.monotonic() > deadline:
            raise TanzuError(
                _("cluster {namespace}/{name} was still listed {seconds:.0f} s after deletion started").format(
                    namespace=namespace, name=name, seconds=timeout
                )
            )

        time.sleep(POLL_INTERVAL_SECONDS)
