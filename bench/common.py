"""Shared pieces of the benchmarks: tool paths, lab start-up, statistics, load readings and Markdown tables."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.metadata
import os
import pathlib
import platform
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence

from lab.lab import ROOT, Lab, LabSettings

GPUS_PER_HOST = "A100-PCIE-80GB:2"


def add_tool_paths() -> None:
    """Put the toolchain and the virtualenv first on PATH and set PULUMI_HOME, with the Makefile's defaults.

    A TKG_GPU_CACHE or PULUMI_HOME already in the environment is kept.
    """
    cache = pathlib.Path(
        os.environ.get("TKG_GPU_CACHE")
        or pathlib.Path(os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache") / "tkg-gpu"
    )
    entries = [str(cache / "bin"), str(ROOT / ".venv" / "bin")]
    current = os.environ.get("PATH", "").split(os.pathsep)
    os.environ["PATH"] = os.pathsep.join([*entries, *[entry for entry in current if entry not in entries]])
    os.environ.setdefault("PULUMI_HOME", str(cache / "pulumi-home"))


def progress(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def parse_host_counts(text: str) -> list[int]:
    """Parse ``1,2,8`` into host counts within the simulator's range of 1 to 99."""
    try:
        counts = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid host counts {text!r}: expected integers separated by commas, such as 1,2,8") from None

    if not counts or any(not 1 <= count <= 99 for count in counts):
        raise argparse.ArgumentTypeError(f"invalid host counts {text!r}: each must be between 1 and 99")

    return counts


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: must be at least 1")

    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: must be at least 0")

    return value


@contextlib.contextmanager
def running_lab(hosts: int, gpus: str = GPUS_PER_HOST) -> Iterator[tuple[Lab, str]]:
    """Start a lab with ``hosts`` ESXi hosts in a temporary directory, and yield it with its random password.

    The password lives only in this process and in the environment of the lab's child processes.
    """
    password = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="tkg-gpu-bench-") as state_dir:
        lab = Lab(pathlib.Path(state_dir) / "lab", password, LabSettings(hosts=hosts, gpus=gpus, kubernetes=False))
        with lab:
            yield lab, password


def _machine_cpu_seconds() -> tuple[float, float]:
    """Return the busy and total CPU seconds of all cores since boot, from the first line of /proc/stat."""
    fields = [int(value) for value in pathlib.Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    busy = user + nice + system + irq + softirq + steal
    ticks_per_second = os.sysconf("SC_CLK_TCK")

    return busy / ticks_per_second, (busy + idle + iowait) / ticks_per_second


def _own_cpu_seconds() -> float:
    """Return the CPU seconds of this process and of its children that have been waited for."""
    total = 0.0
    for scope in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(scope)
        total += usage.ru_utime + usage.ru_stime

    return total


@dataclasses.dataclass
class LoadMonitor:
    """Machine load during a benchmark: load averages, and how much CPU other processes took meanwhile.

    The CPU of the benchmark's own processes counts only children that have exited and been waited for,
    such as the lab simulator after it stops and each ``pulumi`` run, so read the result after the lab stopped.
    """

    load_before: str = ""
    _busy: float = 0.0
    _total: float = 0.0
    _own: float = 0.0

    def start(self) -> LoadMonitor:
        self.load_before = load_average()
        self._busy, self._total = _machine_cpu_seconds()
        self._own = _own_cpu_seconds()

        return self

    def summary(self) -> str:
        busy, total = _machine_cpu_seconds()
        cores = os.cpu_count() or 1
        elapsed = (total - self._total) / cores
        machine_busy = busy - self._busy
        own = _own_cpu_seconds() - self._own
        others = max(machine_busy - own, 0.0)

        return (
            f"load average (1/5/15 min) {self.load_before} before, {load_average()} after; "
            f"over {elapsed:.0f} s the {cores} cores were {100 * machine_busy / (cores * elapsed):.0f} % busy: "
            f"{100 * own / (cores * elapsed):.0f} % this benchmark and its lab, "
            f"about {100 * others / (cores * elapsed):.0f} % other processes"
        )


def _git(*args: str) -> str:
    result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)

    return result.stdout.strip() if result.returncode == 0 else ""


def software_summary() -> str:
    """Describe the checkout and the versions that shape the figures: commit, Python, Pulumi CLI and SDK, pyVmomi."""
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    changed = len(_git("status", "--porcelain", "--untracked-files=no").splitlines())
    checkout = f"commit {commit}" + (f" with uncommitted changes in {changed} tracked files" if changed else "")
    cli = "not found"
    if shutil.which("pulumi"):
        cli = subprocess.run(["pulumi", "version"], capture_output=True, text=True, check=False).stdout.strip()
    packages = ", ".join(f"{name} {importlib.metadata.version(name)}" for name in ("pulumi", "pyvmomi"))

    return f"{checkout}; Python {platform.python_version()}; Pulumi CLI {cli}; {packages}"


def load_average() -> str:
    one_minute, five_minutes, fifteen_minutes = os.getloadavg()

    return f"{one_minute:.2f} / {five_minutes:.2f} / {fifteen_minutes:.2f}"


def milliseconds(samples_ns: Sequence[int]) -> list[float]:
    return [sample / 1e6 for sample in samples_ns]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def quartiles(values: Sequence[float]) -> tuple[float, float]:
    """Return the first and third quartile, which are the value itself for a single value."""
    if len(values) < 2:
        return values[0], values[0]

    q1, _q2, q3 = statistics.quantiles(values, n=4, method="inclusive")

    return q1, q3


def count_range(counts: Sequence[int]) -> str:
    """Format request counts as one number when every run made the same count, else as ``min–max``."""
    low, high = min(counts), max(counts)

    return str(low) if low == high else f"{low}–{high}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], align_right: Sequence[bool]) -> str:
    separator = ["---:" if right else "---" for right in align_right]
    lines = [header, separator, *rows]

    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)
