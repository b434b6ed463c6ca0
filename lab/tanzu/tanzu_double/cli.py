"""Entry point: the `tanzu` command tree with the `cluster` plugin's commands and flags.

Flags, hidden flags, defaults and argument counts follow tanzu-framework v0.29.0
(cmd/cli/plugin/cluster/*.go). Exit codes: 0 on success and for help, 1 for every error,
130 when interrupted.
"""

from __future__ import annotations

import os
import sys

from . import commands
from .errors import CliError, UsageError
from .flags import Command, Flag, exact_args, parse_command_line, render_help, wants_help
from .output import write_stdout

TRACEBACK_VARIABLE = "TANZU_DOUBLE_TRACEBACK"
NAMESPACE_USAGE = "Namespace of the workload cluster (default namespace when empty)"


def _create_command() -> Command:
    hidden = dict(hidden=True)
    return Command(
        name="create",
        use="create CLUSTER_NAME",
        short="Create a cluster",
        flags=(
            Flag("file", "f", usage="Flat TKG configuration file (VARIABLE: value) that describes the cluster"),
            Flag("tkr", usage="TanzuKubernetesRelease name, or a name prefix, to build the cluster from"),
            Flag("dry-run", "d", "bool", False, "Print the cluster objects as YAML and create nothing"),
            Flag("namespace", "n", usage=NAMESPACE_USAGE, **hidden),
            Flag("timeout", "t", "duration", 1800.0, "Time to wait for the cluster; under 15m means 30m", **hidden),
            Flag("yes", "y", "bool", False, "Create without asking for confirmation", **hidden),
            Flag("plan", "p", usage="Cluster plan, dev or prod (overrides CLUSTER_PLAN)", **hidden),
            Flag("controlplane-machine-count", "c", "int", 0, "Number of control plane machines", **hidden),
            Flag("worker-machine-count", "w", "int", 0, "Number of worker machines", **hidden),
            Flag("cni", usage="CNI of the cluster: antrea, calico or none", **hidden),
            Flag("size", usage="Node size of all machines: small, medium, large or extra-large", **hidden),
            Flag("controlplane-size", usage="Node size of the control plane machines", **hidden),
            Flag("worker-size", usage="Node size of the worker machines", **hidden),
            Flag("vsphere-controlplane-endpoint", usage="Control plane endpoint address", **hidden),
            Flag("enable-cluster-options", usage="Comma-separated cluster options (accepted, ignored)", **hidden),
            Flag("infrastructure", "i", usage="Infrastructure provider (accepted, ignored)", **hidden),
        ),
        run=commands.run_create,
    )


def _list_command() -> Command:
    return Command(
        name="list",
        use="list",
        short="List clusters",
        flags=(
            Flag("namespace", "n", "string", "default", "Namespace whose workload clusters are listed"),
            Flag("all-namespaces", "A", "bool", False, "List clusters of all namespaces; -n is ignored"),
            Flag("include-management-cluster", "", "bool", False, "Also list the management cluster"),
            Flag("output", "o", usage="Output format (yaml|json|table)"),
        ),
        run=commands.run_list,
    )


def _get_command() -> Command:
    return Command(
        name="get",
        use="get CLUSTER_NAME",
        short="Get details from a cluster",
        flags=(
            Flag("namespace", "n", usage="Namespace of the workload cluster (all namespaces when empty)"),
            Flag("show-all-conditions", usage="Kinds or kind/name whose conditions are all shown (accepted, ignored)"),
            Flag("show-details", "", "bool", False, "Show infrastructure and bootstrap objects (accepted, ignored)"),
            Flag("show-group-members", "", "bool", False, "List machines one by one instead of grouping them"),
            Flag("disable-grouping", "", "bool", False, "Deprecated: use --show-group-members", hidden=True),
            Flag("disable-no-echo", "", "bool", False, "Deprecated: use --show-details", hidden=True),
        ),
        args_rule=exact_args(1),
        run=commands.run_get,
    )


def _delete_command() -> Command:
    return Command(
        name="delete",
        use="delete CLUSTER_NAME",
        short="Delete a cluster",
        flags=(
            Flag("namespace", "n", usage=NAMESPACE_USAGE),
            Flag("yes", "y", "bool", False, "Delete without asking for confirmation"),
        ),
        args_rule=exact_args(1),
        run=commands.run_delete,
    )


def _kubeconfig_command() -> Command:
    get = Command(
        name="get",
        use="get CLUSTER_NAME",
        short="Get kubeconfig of a cluster",
        long="Get the kubeconfig of a cluster and merge its context into a kubeconfig file",
        example=(
            "\n    # Merge the admin context of a workload cluster into a file\n"
            "    tanzu cluster kubeconfig get CLUSTER_NAME --admin --export-file ./gpu.kubeconfig\n"
        ),
        flags=(
            Flag("admin", "", "bool", False, "Get the admin kubeconfig of the workload cluster"),
            Flag("namespace", "n", usage=NAMESPACE_USAGE),
            Flag("export-file", usage="Kubeconfig file to merge into (default: $KUBECONFIG or ~/.kube/config)"),
        ),
        args_rule=exact_args(1),
        run=commands.run_kubeconfig_get,
    )
    return Command(name="kubeconfig", use="kubeconfig", short="Cluster kubeconfig operations").add(get)


def _node_pool_command() -> Command:
    set_command = Command(
        name="set",
        use="set CLUSTER_NAME",
        short="Set node pool for cluster",
        flags=(
            Flag("file", "f", usage="YAML file that describes the node pool", required=True),
            Flag("namespace", "", "string", "default", "Namespace of the cluster"),
            Flag("base-machine-deployment", usage="Existing node pool that a new node pool starts as a copy of"),
        ),
        args_rule=exact_args(1),
        run=commands.run_node_pool_set,
    )
    list_command = Command(
        name="list",
        use="list CLUSTER_NAME",
        short="List node pools",
        flags=(
            Flag("namespace", "n", "string", "default", "Namespace of the cluster"),
            Flag("output", "o", usage="Output format (yaml|json|table)"),
        ),
        args_rule=exact_args(1),
        run=commands.run_node_pool_list,
    )
    delete_command = Command(
        name="delete",
        use="delete CLUSTER_NAME",
        short="Delete a NodePool object of a cluster",
        flags=(
            Flag("name", "n", usage="Name of the node pool to delete", required=True),
            Flag("namespace", usage="Namespace of the cluster (default: the cluster's namespace)"),
        ),
        args_rule=exact_args(1),
        run=commands.run_node_pool_delete,
    )
    return Command(name="node-pool", use="node-pool", short="Cluster node-pool operations").add(
        set_command, list_command, delete_command
    )


def _scale_command() -> Command:
    return Command(
        name="scale",
        use="scale CLUSTER_NAME",
        short="Scale a cluster",
        flags=(
            Flag("worker-machine-count", "w", "int32", 0, "New number of worker machines; 0 leaves it unchanged"),
            Flag("controlplane-machine-count", "c", "int32", 0, "New number of control plane machines, odd; 0 leaves it unchanged"),
            Flag("node-pool-name", "p", usage="Node pool that -w applies to (default: spread over all node pools)"),
            Flag("namespace", "n", usage=NAMESPACE_USAGE),
        ),
        args_rule=exact_args(1),
        run=commands.run_scale,
    )


def _stub(name: str, short: str) -> Command:
    return Command(name=name, use=f"{name} CLUSTER_NAME", short=f"{short} (not implemented by the test double)", run=commands.not_implemented)


def build_tree() -> Command:
    cluster = Command(
        name="cluster",
        use="cluster",
        short="Kubernetes cluster operations",
        aliases=("cl", "clusters"),
        persistent_flags=(
            Flag("verbose", "v", "int32", 0, "Log level verbosity, 0-9 (accepted, ignored)"),
            Flag("log-file", usage="Also append progress messages to this file"),
        ),
    )
    cluster.add(
        _create_command(),
        _list_command(),
        _delete_command(),
        _stub("upgrade", "Upgrade a cluster"),
        _scale_command(),
        _stub("machinehealthcheck", "MachineHealthCheck operations for a cluster"),
        _stub("credentials", "Update credentials for a cluster"),
        _kubeconfig_command(),
        _get_command(),
        _stub("available-upgrades", "Get upgrade information for a cluster"),
        _node_pool_command(),
        Command(name="version", use="version", short="Version information", run=commands.run_plugin_version),
    )
    root = Command(name="tanzu", use="tanzu", short="The Tanzu CLI (test double with the cluster plugin)")
    root.add(cluster, Command(name="version", use="version", short="Version information", run=commands.run_core_version))
    return root


def _resolve(root: Command, argv: list[str]) -> tuple[Command, list[str]]:
    command = root
    rest = list(argv)
    while rest:
        child = command.find_child(rest[0])
        if child is None:
            break
        command = child
        rest = rest[1:]
    return command, rest


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    root = build_tree()
    try:
        command, rest = _resolve(root, argv)
        if wants_help(rest):
            write_stdout(render_help(command))
            return 0
        if command.run is None:
            words = [word for word in rest if not word.startswith("-")]
            if words:
                raise UsageError(f'unknown command "{words[0]}" for "{command.path}"')
            parse_command_line(command, rest)
            write_stdout(render_help(command))
            return 0
        invocation = parse_command_line(command, rest)
        return command.run(invocation)
    except CliError as error:
        sys.stderr.write(f"Error: {error}\n")
        sys.stderr.flush()
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("Error: interrupted\n")
        return 130
    except Exception as error:  # noqa: BLE001 - report without a traceback that could quote input
        if os.environ.get(TRACEBACK_VARIABLE):
            raise
        sys.stderr.write(
            f"Error: internal error in the tanzu test double: {type(error).__name__}: {error} "
            f"(set {TRACEBACK_VARIABLE}=1 for a traceback)\n"
        )
        return 1
