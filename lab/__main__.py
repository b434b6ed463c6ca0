"""Lab commands: ``python -m lab demo`` runs the dev stack end to end against a fresh lab.

``start`` and ``stop`` keep a lab running between commands for interactive use; the process IDs of its
simulator and control planes, and their addresses, are in ``.lab/lab.json``. ``switch NAME on|off`` turns a
failure switch of that running lab on or off.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import socket
import sys
import time

from lab.kube import ControlPlane, ProcessRecord, stop_processes
from lab.lab import ROOT, SWITCHES, Lab, LabError, LabSettings, kubernetes_environment, progress, set_switch
from lab.stack import PulumiError, Stack

STATE_DIR = ROOT / ".lab"
RECORD_PATH = STATE_DIR / "lab.json"
DEV_PASSPHRASE = "tkg-gpu-lab"
DEV_PORT = 18989


def lab_stack(name: str, lab: Lab | None = None) -> Stack:
    """Return the dev site stack or the mgmt management stack, both in the lab's own file backend."""
    return Stack(
        project_dir=ROOT,
        name=name,
        backend_dir=STATE_DIR / "backend",
        passphrase=os.environ.get("PULUMI_CONFIG_PASSPHRASE", DEV_PASSPHRASE),
        environment=lab.environment() if lab else {},
    )


def check_port_free() -> None:
    """Fail before touching any state when the dev lab's port is taken, usually by a running lab."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", DEV_PORT))
        except OSError:
            raise LabError(
                f"port 127.0.0.1:{DEV_PORT} is in use, probably by a lab started with `make lab-up`; stop it with `make lab-down`"
            ) from None


def reset_lab_stacks() -> tuple[Stack, Stack]:
    """Start the mgmt and dev stacks from empty state, because every lab starts with a fresh simulator and planes."""
    check_port_free()
    progress("resetting the lab stacks' state in .lab/")
    stacks = (lab_stack("mgmt"), lab_stack("dev"))
    for stack in stacks:
        stack.remove()
        stack.init()
    shutil.rmtree(STATE_DIR / "lab" / "tanzu", ignore_errors=True)

    return stacks


def demo() -> int:
    management, site = reset_lab_stacks()
    password = site.config_get("tkg-gpu:vcenterPassword")

    progress(f"starting the lab: vCenter simulator on 127.0.0.1:{DEV_PORT}, management and workload control planes")
    with Lab(STATE_DIR / "lab", password, LabSettings(port=DEV_PORT)) as lab:
        for stack in (management, site):
            stack.environment = lab.environment()
        progress("pulumi up of the mgmt stack: --etcd-dial-timeout-duration on the kubeadm control-plane controller")
        print(management.run("up", "--yes", "--skip-preview", "--suppress-outputs").stdout)
        progress("pulumi preview --policy-pack policies (dev stack)")
        print(site.run("preview", "--policy-pack", "policies").stdout)
        progress("pulumi up --policy-pack policies (dev stack)")
        print(site.run("up", "--yes", "--skip-preview", "--policy-pack", "policies", "--suppress-outputs").stdout)
        progress("stack outputs of mgmt, then dev")
        print(json.dumps(management.outputs(), indent=2))
        print(json.dumps(site.outputs(), indent=2))

    progress("lab stopped; run `make demo` again for a fresh lab")
    return 0


def start() -> int:
    _management, site = reset_lab_stacks()
    started = time.monotonic()
    lab = Lab(STATE_DIR / "lab", site.config_get("tkg-gpu:vcenterPassword"), LabSettings(port=DEV_PORT))
    lab.start()
    record = {
        "url": lab.url,
        "tanzu_state_dir": str(lab.tanzu_state_dir),
        "processes": [process.to_json() for process in lab.records()],
        "planes": {name: str(plane.state_dir) for name, plane in lab.planes.items()},
    }
    RECORD_PATH.write_text(json.dumps(record, indent=2))
    progress(f"lab running after {time.monotonic() - started:.1f} s: {lab.url}; stop it with `make lab-down`")
    # Lines for `eval`; the tanzu double's vCenter password is read from the stack by the README's command.
    print(f"export TANZU_DOUBLE_STATE_DIR={lab.tanzu_state_dir}")
    print(f"export TANZU_DOUBLE_VSPHERE_USERNAME={lab.settings.username}")
    if lab.management is not None and lab.workload is not None:
        for name, value in kubernetes_environment(lab.management, lab.workload).items():
            print(f"export {name}={value}")
        print(f"export KUBECONFIG={lab.workload.kubeconfig_path}")
    return 0


def read_record() -> dict | None:
    if not RECORD_PATH.exists():
        return None
    return json.loads(RECORD_PATH.read_text())


def stop() -> int:
    record = read_record()
    if record is None:
        progress("no lab is running")
        return 0

    started = time.monotonic()
    if "processes" in record:
        processes = [ProcessRecord.from_json(process) for process in record["processes"]]
    else:
        # A record written before the lab had control planes: only the simulator's PID.
        processes = [ProcessRecord("vcsim-gpu", record["pid"], os.path.realpath(shutil.which("vcsim-gpu") or ""))]
    stop_processes(processes)
    for name, state_dir in record.get("planes", {}).items():
        ControlPlane(name, pathlib.Path(state_dir)).remove_secrets()
    RECORD_PATH.unlink()
    pids = ", ".join(str(process.pid) for process in processes)
    progress(f"lab stopped after {time.monotonic() - started:.1f} s (pids {pids})")
    return 0


def switch(name: str, state: str) -> int:
    record = read_record()
    if record is None:
        raise LabError("no lab is running; start one with `make lab-up`")

    planes = record.get("planes", {})
    workload = ControlPlane("workload", pathlib.Path(planes["workload"])) if "workload" in planes else None
    set_switch(name, state == "on", tanzu_state_dir=pathlib.Path(record["tanzu_state_dir"]), workload=workload)
    progress(f"switch {name} is {state}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m lab", description="Local tkg-gpu lab")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="run the dev stack end to end against a fresh lab, then stop the lab")
    commands.add_parser("start", help="start a lab and print `export` lines for its environment")
    commands.add_parser("stop", help="stop the lab that `start` started")
    switch_parser = commands.add_parser(
        "switch",
        help="turn a failure switch of the running lab on or off",
        description="cuda-fail: cuda-vector-add Pods that start from now on end Failed with exit code 1 and a CUDA "
        "error log. workers-without-gpu: worker nodes that the tanzu double creates from now on advertise no "
        "nvidia.com/gpu.",
    )
    switch_parser.add_argument("name", choices=SWITCHES)
    switch_parser.add_argument("state", choices=["on", "off"])
    arguments = parser.parse_args()
    try:
        if arguments.command == "switch":
            return switch(arguments.name, arguments.state)
        return {"demo": demo, "start": start, "stop": stop}[arguments.command]()
    except PulumiError as error:
        print(error, file=sys.stderr)
        return 1
    except LabError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
