"""Benchmark the real Pulumi engine on the dev-shaped stack: preview, up, no-change preview, refresh, destroy.

Run from the repository root: ``.venv/bin/python -m bench.stack_cycle [--hosts 2,8] [--repetitions 2]``.
For each host count it starts a fresh lab with two A100 GPUs per host and copies the program to a
temporary project whose virtualenv is the checkout's ``.venv``. The stack's configuration is
``Pulumi.dev.yaml`` with the lab's address and all of the lab's hosts. Every step runs the Pulumi CLI found on
PATH against a local file backend, as ``make demo`` and the engine tests do, and is timed from the
start of the ``pulumi`` process to its exit. The vCenter request count of a step includes the requests
of the tanzu test double, which clones and deletes the cluster's VMs in the same simulator.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import secrets
import shutil
import sys
import tempfile
import time

import yaml

from bench import common
from lab.lab import ROOT, Lab, LabError
from lab.stack import PulumiError, Stack, use_virtualenv

PROJECT_FILES = ("Pulumi.yaml", "__main__.py", "components", "policies", "locale")
STACK_NAME = "bench"

# Each step as (label, pulumi arguments), with the commands of `make demo` and the engine tests.
STEPS = (
    ("preview", ("preview", "--policy-pack", "policies")),
    ("up", ("up", "--yes", "--skip-preview", "--policy-pack", "policies")),
    ("no-change preview", ("preview", "--expect-no-changes", "--policy-pack", "policies")),
    ("refresh", ("refresh", "--yes", "--skip-preview")),
    ("destroy", ("destroy", "--yes", "--skip-preview")),
)


@dataclasses.dataclass
class StepSamples:
    seconds: list[float] = dataclasses.field(default_factory=list)
    requests: list[int] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class CycleResult:
    hosts: int
    devices: int
    steps: dict[str, StepSamples]


def copy_project(target: pathlib.Path) -> pathlib.Path:
    """Copy the program to ``target`` and point its and the policy pack's virtualenv at the checkout's .venv."""
    target.mkdir(parents=True)
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            shutil.copy2(source, target / name)

    use_virtualenv(target, ROOT / ".venv")

    return target


def dev_shaped_config(lab: Lab) -> dict:
    """Return the dev stack's settings with the lab's address and every lab host, without the password."""
    document = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    settings = dict(document["config"])
    settings.pop("tkg-gpu:vcenterPassword", None)
    settings["tkg-gpu:vcenter"] = {**settings["tkg-gpu:vcenter"], "server": lab.server}
    settings["tkg-gpu:hosts"] = sorted(host["name"] for host in lab.hosts()["hosts"])

    return settings


def create_stack(work_dir: pathlib.Path, lab: Lab, password: str) -> Stack:
    project = copy_project(work_dir / "project")
    stack = Stack(
        project_dir=project,
        name=STACK_NAME,
        backend_dir=work_dir / "backend",
        passphrase=secrets.token_urlsafe(16),
        environment=lab.environment(),
    )
    stack.init()
    config_path = project / f"Pulumi.{STACK_NAME}.yaml"
    document = yaml.safe_load(config_path.read_text()) if config_path.exists() else {}
    document["config"] = dev_shaped_config(lab)
    config_path.write_text(yaml.safe_dump(document))
    stack.set_secret("tkg-gpu:vcenterPassword", password)

    return stack


def check_after_step(label: str, stack: Stack, expected_devices: int) -> None:
    """Raise unless the stack is in the state the step should leave, so no failed run is timed as a success."""
    if label == "up":
        outputs = stack.outputs()
        devices = sum(len(host_devices) for host_devices in outputs.get("hosts", {}).values())
        if outputs.get("clusterStatus") != "running" or devices != expected_devices:
            raise RuntimeError(
                f"after up: cluster status {outputs.get('clusterStatus')!r} with {devices} passthrough devices, "
                f"expected 'running' with {expected_devices}"
            )
    elif label == "destroy" and stack.outputs():
        raise RuntimeError("after destroy: the stack still has outputs")


def bench_cycles(host_count: int, *, repetitions: int) -> CycleResult:
    steps = {label: StepSamples() for label, _args in STEPS}
    with common.running_lab(host_count) as (lab, password), tempfile.TemporaryDirectory(prefix="tkg-gpu-bench-stack-") as work:
        stack = create_stack(pathlib.Path(work), lab, password)
        devices = 2 * host_count
        for repetition in range(1, repetitions + 1):
            for label, args in STEPS:
                common.progress(f"{host_count} hosts, cycle {repetition}/{repetitions}: pulumi {' '.join(args)}")
                lab.reset_request_count()
                start = time.perf_counter()
                stack.run(*args)
                steps[label].seconds.append(time.perf_counter() - start)
                steps[label].requests.append(lab.request_count())
                check_after_step(label, stack, devices)

        stack.remove()

    return CycleResult(host_count, devices, steps)


def seconds_cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"

    return f"{common.median(values):.1f} ({min(values):.1f}–{max(values):.1f})"


def results_tables(results: list[CycleResult]) -> tuple[str, str]:
    """Return a table of wall times in seconds and one of vCenter requests, one row per host count."""
    labels = [label for label, _args in STEPS]
    header = ["Hosts", "Devices", *labels]
    align = [True] * len(header)
    times = [
        [str(result.hosts), str(result.devices), *[seconds_cell(result.steps[label].seconds) for label in labels]]
        for result in results
    ]
    for row, result in zip(times, results):
        cycle_totals = [sum(values) for values in zip(*(result.steps[label].seconds for label in labels))]
        row.append(seconds_cell(cycle_totals))

    requests = [
        [str(result.hosts), str(result.devices), *[common.count_range(result.steps[label].requests) for label in labels]]
        for result in results
    ]

    return (
        common.markdown_table([*header, "cycle"], times, [*align, True]),
        common.markdown_table(header, requests, align),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.stack_cycle",
        description="Time preview, up, no-change preview, refresh and destroy of the dev-shaped stack against the lab.",
    )
    parser.add_argument(
        "--hosts", type=common.parse_host_counts, default=[2, 8],
        help="comma-separated numbers of ESXi hosts (two A100 GPUs each), each 1 to 99 (default: 2,8)",
    )
    parser.add_argument(
        "--repetitions", type=common.positive_int, default=2,
        help="full cycles per host count on the same lab and stack (default: 2)",
    )
    args = parser.parse_args(argv)

    common.add_tool_paths()
    if shutil.which("pulumi") is None:
        parser.error("pulumi not found on PATH; run `make tools` first")

    load = common.LoadMonitor().start()
    try:
        results = [bench_cycles(host_count, repetitions=args.repetitions) for host_count in args.hosts]
    except (LabError, PulumiError, RuntimeError) as error:
        # A PulumiError message contains the failed command's stdout and stderr.
        print(f"stack cycle benchmark failed: {error}", file=sys.stderr)
        return 1

    times, requests = results_tables(results)

    print("Wall time per step in seconds (median and min–max when there is more than one cycle):")
    print()
    print(times)
    print()
    print("vCenter requests per step (SOAP requests counted by the simulator, tanzu test double included):")
    print()
    print(requests)
    print()
    print(f"{args.repetitions} cycle(s) per host count; {load.summary()}.")
    print(common.software_summary() + ".")

    return 0


if __name__ == "__main__":
    sys.exit(main())
