"""Cluster records of the double, one JSON file per cluster under TANZU_DOUBLE_STATE_DIR.

Layout:
    <state dir>/.lock                         lock file; every read-modify-write holds flock on it
    <state dir>/clusters/<namespace>/<name>.json   one record per cluster (schemaVersion 1)

Files are written to a temporary file in the same directory and renamed over the old one,
so a reader sees either the old or the new record. Records hold no secrets: no password, no
kubeconfig credentials, no copy of the configuration file.
"""

from __future__ import annotations

import calendar
import contextlib
import fcntl
import json
import os
import tempfile
import time
from typing import Iterator

from .errors import CliError

STATE_DIR_VARIABLE = "TANZU_DOUBLE_STATE_DIR"
SCHEMA_VERSION = 1


def state_dir_from_env(environ: dict[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    path = environ.get(STATE_DIR_VARIABLE, "")
    if not path:
        raise CliError(
            f"{STATE_DIR_VARIABLE} is not set; point it at the directory where the tanzu test "
            "double keeps its clusters (it is created when missing)"
        )
    return path


def now_iso(timestamp: float | None = None) -> str:
    moment = time.gmtime(time.time() if timestamp is None else timestamp)
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", moment)


def parse_iso(text: str) -> float:
    return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))


def process_alive(pid: int) -> bool:
    """Return whether a process with this id exists. NOTE: a reused process id reads as alive."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StateStore:
    def __init__(self, root: str):
        self.root = root
        try:
            os.makedirs(root, mode=0o700, exist_ok=True)
            os.makedirs(os.path.join(root, "clusters"), mode=0o700, exist_ok=True)
        except OSError as error:
            raise CliError(f"unable to create state directory {root!r}: {error.strerror}") from None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the exclusive lock for a read-modify-write of the records."""
        path = os.path.join(self.root, ".lock")
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
            os.close(descriptor)

    def _path(self, namespace: str, name: str) -> str:
        return os.path.join(self.root, "clusters", namespace, f"{name}.json")

    def load(self, namespace: str, name: str) -> dict | None:
        try:
            with open(self._path(namespace, name), encoding="utf-8") as stream:
                return json.load(stream)
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError) as error:
            raise CliError(f"unable to read the record of cluster {name!r} in the state directory: {error}") from None

    def list(self, namespace: str | None = None) -> list[dict]:
        """Records of one namespace, or of all namespaces when namespace is None."""
        base = os.path.join(self.root, "clusters")
        namespaces = [namespace] if namespace is not None else sorted(os.listdir(base))
        records: list[dict] = []
        for current in namespaces:
            directory = os.path.join(base, current)
            if not os.path.isdir(directory):
                continue
            for file_name in sorted(os.listdir(directory)):
                if file_name.endswith(".json") and not file_name.startswith("."):
                    record = self.load(current, file_name[: -len(".json")])
                    if record is not None:
                        records.append(record)
        return records

    def save(self, record: dict) -> None:
        record["schemaVersion"] = SCHEMA_VERSION
        record["updatedAt"] = now_iso()
        path = self._path(record["namespace"], record["name"])
        directory = os.path.dirname(path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=".record-", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
                json.dump(record, stream, indent=2, sort_keys=True)
                stream.write("\n")
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    def remove(self, namespace: str, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(namespace, name))
