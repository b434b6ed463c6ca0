"""Lab commands: ``python -m lab demo`` runs the dev stack end to end against a fresh lab.

``start`` and ``stop`` keep a lab running between commands for interactive use; its process ID and
address are in ``.lab/lab.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sys

from lab.lab import ROOT, Lab, LabError, LabSettings
from lab.stack import PulumiError, Stack

STATE_DIR = ROOT / ".lab"
DEV_PASSPHRASE = "tkg-gpu-lab"
DEV_PORT = 18989


def dev_stack(lab: Lab | None = None) -> Stack:
    return Stack(
        project_dir=ROOT,
        name="dev",
        backend_dir=STATE_DIR / "backend",
        passphrase=os.environ.get("PULUMI_CONFIG_PASSPHRASE", DEV_PASSPHRASE),
        environment=lab.environment() if lab else {},
    )


def progress(message: str) -> None:
    print(f"==> {message}", file=sys.stderr, flush=True)


def check_port_free() -> None:
    """Fail before touching any state when the dev lab's port is taken, usually by a running lab."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", DEV_PORT))
        except OSError:
            raise LabError(
                f"port 127.0.0.1:{DEV_PORT} is in use, probably by a lab started with `make lab-up`; stop it with `make lab-down`"
            ) from None


def reset_dev_stack() -> Stack:
    """Start the dev stack from empty state, because every lab starts with a fresh simulator."""
    check_port_free()
    stack = dev_stack()
    progress("resetting the dev stack's lab state in .lab/")
    stack.remove()
    stack.init()
    shutil.rmtree(STATE_DIR / "lab" / "tanzu", ignore_errors=True)

    return stack


def demo() -> int:
    stack = reset_dev_stack()
    password = stack.config_get("tkg-gpu:vcenterPassword")

    progress(f"starting the vCenter simulator on 127.0.0.1:{DEV_PORT}")
    with Lab(STATE_DIR / "lab", password, LabSettings(port=DEV_PORT)) as lab:
        stack.environment = lab.environment()
        progress("pulumi preview --policy-pack policies")
        print(stack.run("preview", "--policy-pack", "policies").stdout)
        progress("pulumi up --policy-pack policies")
        print(stack.run("up", "--yes", "--skip-preview", "--policy-pack", "policies", "--suppress-outputs").stdout)
        progress("stack outputs")
        print(json.dumps(stack.outputs(), indent=2))

    progress("lab stopped; run `make demo` again for a fresh lab")
    return 0


def start() -> int:
    stack = reset_dev_stack()
    lab = Lab(STATE_DIR / "lab", stack.config_get("tkg-gpu:vcenterPassword"), LabSettings(port=DEV_PORT)).start()
    record = {"pid": lab.pid, "url": lab.url, "tanzu_state_dir": str(lab.tanzu_state_dir)}
    (STATE_DIR / "lab.json").write_text(json.dumps(record))
    progress(f"lab running: {lab.url} (pid {lab.pid}); stop it with `make lab-down`")
    # Lines for `eval`; the tanzu double's vCenter password is read from the stack by the README's command.
    print(f"export TANZU_DOUBLE_STATE_DIR={lab.tanzu_state_dir}")
    print(f"export TANZU_DOUBLE_VSPHERE_USERNAME={lab.settings.username}")
    return 0


def stop() -> int:
    record_path = STATE_DIR / "lab.json"
    if not record_path.exists():
        progress("no lab is running")
        return 0

    record = json.loads(record_path.read_text())
    try:
        os.kill(record["pid"], signal.SIGTERM)
    except ProcessLookupError:
        pass
    record_path.unlink()
    progress(f"lab stopped (pid {record['pid']})")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m lab", description="Local tkg-gpu lab")
    parser.add_argument("command", choices=["demo", "start", "stop"])
    command = parser.parse_args().command
    try:
        return {"demo": demo, "start": start, "stop": stop}[command]()
    except PulumiError as error:
        print(error, file=sys.stderr)
        return 1
    except LabError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
