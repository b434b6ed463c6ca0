"""Output formats of the Tanzu CLI: tables, `-o json|yaml`, and the `cluster get` tree."""

from __future__ import annotations

import json
import sys
import time

import yaml

from . import records
from .state import parse_iso

MAX_CONDITION_MESSAGE = 100


def write_stdout(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def render_table(headers: list[str], rows: list[list[str]]) -> str:
    """Borderless left-aligned table with the two-space indent of the Tanzu CLI."""
    columns = [headers] + rows
    widths = [max(len(str(row[index])) for row in columns) for index in range(len(headers))]
    lines = []
    for row in columns:
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths)]
        lines.append(("  " + "  ".join(cells)).rstrip())
    return "\n".join(lines) + "\n"


def render_json(data: object) -> str:
    """Like the CLI's json.MarshalIndent with two spaces; like the CLI, no trailing newline."""
    return json.dumps(data, indent=2, ensure_ascii=False)


def render_yaml(data: object) -> str:
    return yaml.safe_dump(data, default_flow_style=False, sort_keys=False, allow_unicode=True)


def human_duration(seconds: float) -> str:
    """Age in the style of Kubernetes' HumanDuration (5s, 3m20s, 45m, 5h10m, 3d4h, 2y)."""
    if seconds < 0:
        return "0s"
    total_seconds = int(seconds)
    if total_seconds < 120:
        return f"{total_seconds}s"
    minutes = total_seconds // 60
    if minutes < 10:
        rest = total_seconds % 60
        return f"{minutes}m" if rest == 0 else f"{minutes}m{rest}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h" if rest == 0 else f"{hours}h{rest}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d" if rest == 0 else f"{hours // 24}d{rest}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        return f"{hours // (24 * 365)}y" if rest == 0 else f"{hours // (24 * 365)}y{rest}d"
    return f"{hours // (24 * 365)}y"


def _since(timestamp: str) -> str:
    return human_duration(time.time() - parse_iso(timestamp))


def _short_message(message: str) -> str:
    if len(message) > MAX_CONDITION_MESSAGE:
        return f"{message[:MAX_CONDITION_MESSAGE]} ..."
    return message


def _machine_condition(machine: dict) -> tuple[str, str, str, str]:
    """READY, SEVERITY, REASON and MESSAGE of a Machine's Ready condition."""
    if machine["phase"] == "Running":
        return "True", "", "", ""
    if machine["phase"] == "Failed":
        return "False", "Error", machine.get("reason") or "Failed", _short_message(machine.get("message", ""))
    return "False", "Info", machine.get("reason") or "WaitingForInfrastructure", ""


def _group_condition(machines: list[dict]) -> tuple[str, str, str, str]:
    if machines and all(machine["phase"] == "Running" for machine in machines):
        return "True", "", "", ""
    failed = [machine for machine in machines if machine["phase"] == "Failed"]
    if failed:
        return _machine_condition(failed[0])
    return "False", "Info", "WaitingForInfrastructure", ""


def _machine_rows(prefix: str, machines: list[dict], show_group_members: bool) -> list[list[str]]:
    """Rows for the machines of one owner; equal conditions collapse into `N Machines...`."""
    rows: list[list[str]] = []
    conditions = {_machine_condition(machine)[:3] for machine in machines}
    if len(machines) > 1 and len(conditions) == 1 and not show_group_members:
        ready, severity, reason, message = _machine_condition(machines[0])
        names = [machine["name"] for machine in machines]
        see = f"See {', '.join(names[:2])}" + (", ..." if len(names) > 2 else "")
        since = _since(min(machine["createdAt"] for machine in machines))
        rows.append([f"{prefix}└─{len(machines)} Machines...", ready, severity, reason, since, message or see])
        return rows
    for index, machine in enumerate(sorted(machines, key=lambda item: item["name"])):
        branch = "└─" if index == len(machines) - 1 else "├─"
        ready, severity, reason, message = _machine_condition(machine)
        rows.append([f"{prefix}{branch}Machine/{machine['name']}", ready, severity, reason, _since(machine["createdAt"]), message])
    return rows


def cluster_tree(record: dict, show_group_members: bool = False) -> str:
    """Render the `Details:` tree of `tanzu cluster get` (Cluster, infrastructure, control plane, pools)."""
    name = record["name"]
    suffixes = record.get("objectSuffixes", {})
    cluster_suffix = suffixes.get("cluster", "xxxxx")
    control_plane = records.control_plane_machines(record)
    cp_ready = _group_condition(control_plane)
    deleting = record["phase"] == "deleting"

    cluster_label = f"Cluster/{name}"
    if deleting:
        cluster_label = f"!! DELETED !! {cluster_label}"
    created = _since(record["createdAt"])
    rows: list[list[str]] = [["NAME", "READY", "SEVERITY", "REASON", "SINCE", "MESSAGE"]]
    rows.append([cluster_label, *cp_ready[:3], created, cp_ready[3]])
    rows.append([f"├─ClusterInfrastructure - VSphereCluster/{name}-{cluster_suffix}", "True", "", "", created, ""])
    rows.append([f"├─ControlPlane - KubeadmControlPlane/{name}-{cluster_suffix}", *cp_ready[:3], created, cp_ready[3]])
    rows.extend(_machine_rows("│ ", control_plane, show_group_members))

    deployments = records.machine_deployments(record)
    if deployments:
        rows.append(["└─Workers", "", "", "", "", ""])
        for index, deployment in enumerate(deployments):
            last = index == len(deployments) - 1
            machines = records.pool_machines(record, deployment["name"])
            desired = int(deployment.get("replicas", 0))
            ready_count = sum(1 for machine in machines if machine["phase"] == "Running")
            if ready_count >= desired:
                condition = ("True", "", "", "")
            else:
                condition = (
                    "False",
                    "Warning",
                    "WaitingForAvailableMachines",
                    f"Minimum availability requires {desired} replicas, current {ready_count} available",
                )
            pool_suffix = suffixes.get(deployment["name"], "xxxxx")
            branch = "└─" if last else "├─"
            rows.append(
                [f"  {branch}MachineDeployment/{name}-{deployment['name']}-{pool_suffix}", *condition[:3], created, condition[3]]
            )
            rows.extend(_machine_rows("    " if last else "  │ ", machines, show_group_members))

    widths = [max(len(row[index]) for row in rows) for index in range(6)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines) + "\n"
