"""Handlers of the `tanzu cluster` commands. Each returns the process exit code."""

from __future__ import annotations

import os
import sys
import time

from . import CLI_CORE_VERSION, PLUGIN_VERSION, records
from .config import FlatConfig
from .errors import CliError
from .flags import Invocation
from .kubeconfig import admin_kubeconfig, context_name, default_kubeconfig_path, merge_into_file
from .lifecycle import create_cluster, ensure_name_free, reconcile, sync_planes, update_record
from .nodepool import delete_node_pool, parse_node_pool, set_node_pool
from .output import cluster_tree, render_json, render_table, render_yaml, write_stdout
from .planes import PlaneError, planes_from_env
from .progress import ProgressLog
from .render import dry_run_documents, dump_documents
from .scale import ScaleRequest, scale_cluster, validate_request
from .state import StateStore, now_iso, state_dir_from_env
from .validation import KNOWN_TKRS, build_cluster_spec, read_credentials, tkr_version

# Create timeouts under 15 minutes are replaced by the 30 minute default, as in TKG.
MIN_CREATE_TIMEOUT_SECONDS = 15 * 60
DEFAULT_CREATE_TIMEOUT_SECONDS = 30 * 60
CONFIRM_ANSWERS = {"y", "Y", "yes", "Yes", "YES"}
MANAGEMENT_CLUSTER_VARIABLE = "TANZU_DOUBLE_MANAGEMENT_CLUSTER_NAME"

# Node sizes of --size, --controlplane-size and --worker-size (tkg/tkgconfigproviders/vsphere.go).
NODE_SIZES = {
    "small": (2, 4096, 20),
    "medium": (2, 8192, 40),
    "large": (4, 16384, 40),
    "extra-large": (8, 32768, 80),
}


def _log(invocation: Invocation) -> ProgressLog:
    return ProgressLog(invocation.get("log_file") or None)  # type: ignore[arg-type]


def _open_store(log: ProgressLog) -> StateStore:
    store = StateStore(state_dir_from_env())
    with store.locked():
        reconcile(store, log, dict(os.environ))
    return store


def _flag_overrides(invocation: Invocation) -> dict[str, str]:
    """Hidden create flags that TKG turns into configuration variables."""
    overrides: dict[str, str] = {}
    if invocation.get("plan"):
        overrides["CLUSTER_PLAN"] = str(invocation.get("plan"))
    if invocation.get("vsphere_controlplane_endpoint"):
        overrides["VSPHERE_CONTROL_PLANE_ENDPOINT"] = str(invocation.get("vsphere_controlplane_endpoint"))
    if invocation.get("cni"):
        overrides["CNI"] = str(invocation.get("cni"))
    for flag, roles in (("size", ("CONTROL_PLANE", "WORKER")), ("controlplane_size", ("CONTROL_PLANE",)), ("worker_size", ("WORKER",))):
        size = invocation.get(flag)
        if not size:
            continue
        if size not in NODE_SIZES:
            raise CliError(f"node size {size} is not defined, please select among {', '.join(NODE_SIZES)}")
        cpus, memory, disk = NODE_SIZES[str(size)]
        for role in roles:
            overrides.update(
                {f"VSPHERE_{role}_NUM_CPUS": str(cpus), f"VSPHERE_{role}_MEM_MIB": str(memory), f"VSPHERE_{role}_DISK_GIB": str(disk)}
            )
    return overrides


def run_create(invocation: Invocation) -> int:
    log = _log(invocation)
    path = invocation.get("file")
    if not path:
        raise CliError("the tanzu test double needs a cluster configuration file: pass -f/--file FILE")
    dry_run = bool(invocation.get("dry_run"))
    if not dry_run:
        log.info("Validating configuration...")

    environ = dict(os.environ)
    environ.update(_flag_overrides(invocation))
    config = FlatConfig.from_file(str(path), environ)
    spec = build_cluster_spec(
        config,
        invocation.args[0] if invocation.args else None,
        invocation.get("namespace") or None,  # type: ignore[arg-type]
        invocation.get("tkr") or None,  # type: ignore[arg-type]
        int(invocation.get("controlplane_machine_count") or 0),  # type: ignore[arg-type]
        int(invocation.get("worker_machine_count") or 0),  # type: ignore[arg-type]
    )
    if dry_run:
        write_stdout(
            dump_documents(
                dry_run_documents(spec),
                "The vSphere credentials Secret that TKG also prints is left out by the tanzu test double.",
            )
        )
        return 0

    store = StateStore(state_dir_from_env())
    ensure_name_free(store, spec, log, dict(os.environ))
    credentials = read_credentials(config)
    timeout = float(invocation.get("timeout") or DEFAULT_CREATE_TIMEOUT_SECONDS)  # type: ignore[arg-type]
    if timeout < MIN_CREATE_TIMEOUT_SECONDS:
        timeout = DEFAULT_CREATE_TIMEOUT_SECONDS
    create_cluster(spec, credentials, store, log, timeout, dict(os.environ))
    return 0


def _management_cluster_info(environ: dict[str, str]) -> dict:
    name = environ.get(MANAGEMENT_CLUSTER_VARIABLE) or "tkg-mgmt"
    tkr = KNOWN_TKRS[0]
    return {
        "name": name,
        "namespace": "tkg-system",
        "status": "running",
        "plan": "dev",
        "controlplane": "1/1",
        "workers": "1/1",
        "kubernetes": tkr_version(tkr).split("-tkg.")[0],
        "roles": ["management"],
        "tkr": tkr,
        "labels": {
            "cluster-role.tkg.tanzu.vmware.com/management": "",
            "run.tanzu.vmware.com/tkr": tkr,
            "tkg.tanzu.vmware.com/cluster-name": name,
        },
    }


def run_list(invocation: Invocation) -> int:
    log = _log(invocation)
    store = _open_store(log)
    all_namespaces = bool(invocation.get("all_namespaces"))
    namespace = None if all_namespaces else str(invocation.get("namespace") or "default")
    with store.locked():
        infos = [records.cluster_info(record) for record in store.list(namespace)]
    if invocation.get("include_management_cluster"):
        management = _management_cluster_info(dict(os.environ))
        if namespace in (None, management["namespace"]):
            infos.append(management)
    infos.sort(key=lambda info: (info["namespace"], info["name"]))

    output = invocation.get("output") or ""
    if output == "json":
        write_stdout(render_json(infos))
    elif output == "yaml":
        write_stdout(render_yaml(infos))
    else:
        rows = [
            [
                info["name"], info["namespace"], info["status"], info["controlplane"], info["workers"],
                info["kubernetes"], ",".join(info["roles"]) or "<none>", info["plan"], info["tkr"],
            ]
            for info in infos
        ]
        headers = ["NAME", "NAMESPACE", "STATUS", "CONTROLPLANE", "WORKERS", "KUBERNETES", "ROLES", "PLAN", "TKR"]
        write_stdout(render_table(headers, rows))
    return 0


def _find_record(store: StateStore, name: str, namespace: str | None) -> dict:
    with store.locked():
        if namespace:
            record = store.load(namespace, name)
            matches = [record] if record else []
        else:
            matches = [record for record in store.list() if record["name"] == name]
    if not matches:
        where = f" in namespace '{namespace}'" if namespace else ""
        raise CliError(f"cluster '{name}' not found{where}")
    if len(matches) > 1:
        spaces = ", ".join(record["namespace"] for record in matches)
        raise CliError(f"cluster '{name}' exists in namespaces {spaces}; select one with -n/--namespace")
    return matches[0]


def run_get(invocation: Invocation) -> int:
    log = _log(invocation)
    if invocation.get("disable_no_echo") and invocation.get("show_details"):
        raise CliError("only one of --show-details or --disable-no-echo should be set")
    if invocation.get("disable_grouping") and invocation.get("show_group_members"):
        raise CliError("only one of --show-group-members or --disable-grouping should be set")
    store = _open_store(log)
    record = _find_record(store, invocation.args[0], invocation.get("namespace") or None)  # type: ignore[arg-type]
    info = records.cluster_info(record)
    headers = ["NAME", "NAMESPACE", "STATUS", "CONTROLPLANE", "WORKERS", "KUBERNETES", "ROLES", "TKR"]
    row = [
        info["name"], info["namespace"], info["status"], info["controlplane"], info["workers"],
        info["kubernetes"], ",".join(info["roles"]) or "<none>", info["tkr"],
    ]
    write_stdout(render_table(headers, [row]))
    # The real plugin writes this heading through its logger, so it goes to stderr.
    log.info("\n\nDetails:\n")
    show_members = bool(invocation.get("show_group_members") or invocation.get("disable_grouping"))
    write_stdout(cluster_tree(record, show_group_members=show_members))
    return 0


def _confirm(question: str) -> None:
    sys.stderr.write(f"{question} [y/N]: ")
    sys.stderr.flush()
    answer = sys.stdin.readline() if sys.stdin is not None else ""
    if not answer.endswith("\n"):
        sys.stderr.write("\n")  # end the prompt line when stdin is closed
    if answer.strip() not in CONFIRM_ANSWERS:
        raise CliError("aborted")


def run_delete(invocation: Invocation) -> int:
    log = _log(invocation)
    name = invocation.args[0]
    namespace = str(invocation.get("namespace") or "default")
    if not invocation.get("yes"):
        _confirm(f"Delete workload cluster '{name}'?")
    store = _open_store(log)

    def mark(record: dict) -> None:
        if record["phase"] != "deleting":
            record["phase"] = "deleting"
            record["deleteRequestedAt"] = now_iso()
            record["deleteRequestedEpoch"] = time.time()

    if update_record(store, namespace, name, mark) is None:
        raise CliError(f"cluster '{name}' not found in namespace '{namespace}'")
    try:
        sync_planes(store, namespace, name, dict(os.environ))
    except PlaneError as error:
        # The deletion goes ahead, because its completion removes the objects anyway.
        log.warning(f"the Cluster object of '{name}' could not be marked as deleting: {error}")
    log.info(f"Workload cluster '{name}' is being deleted")
    return 0


def run_scale(invocation: Invocation) -> int:
    log = _log(invocation)
    name = invocation.args[0]
    namespace = str(invocation.get("namespace") or "default")
    request = ScaleRequest(
        worker_count=int(invocation.get("worker_machine_count") or 0),  # type: ignore[arg-type]
        control_plane_count=int(invocation.get("controlplane_machine_count") or 0),  # type: ignore[arg-type]
        pool_name=str(invocation.get("node_pool_name") or ""),
    )
    validate_request(request)
    store = _open_store(log)
    scale_cluster(store, namespace, name, request, log, dict(os.environ))
    return 0


def run_kubeconfig_get(invocation: Invocation) -> int:
    log = _log(invocation)
    if not invocation.get("admin"):
        raise CliError(
            "the tanzu test double only issues admin kubeconfigs (Pinniped is not simulated); add --admin"
        )
    name = invocation.args[0]
    namespace = str(invocation.get("namespace") or "default")
    store = _open_store(log)
    with store.locked():
        record = store.load(namespace, name)
    if record is None:
        raise CliError(f"unable to get the kubeconfig: cluster '{name}' not found in namespace '{namespace}'")
    if not records.control_plane_ready(record):
        raise CliError(f"unable to get the kubeconfig of cluster '{name}': its control plane is not running")

    environ = dict(os.environ)
    export_file = invocation.get("export_file") or ""
    path = str(export_file) if export_file else default_kubeconfig_path(environ)
    planes = planes_from_env(environ, store.root)
    if planes is not None and planes.management is not None:
        # As in TKG, the admin kubeconfig is the one that CAPI keeps in the management cluster.
        config = planes.read_kubeconfig(namespace, name)
    else:
        config = admin_kubeconfig(name, record["workloadServer"], environ)
    merge_into_file(config, path)
    context = context_name(name)
    log.info(f"Saved the admin credentials of cluster '{name}' to '{path}' as context '{context}'")
    log.info(f"Use it with: kubectl --kubeconfig {path} --context {context}")
    return 0


def _open_store_for_cluster(log: ProgressLog, name: str, namespace: str) -> StateStore:
    store = _open_store(log)
    with store.locked():
        record = store.load(namespace, name)
    if record is None:
        raise CliError(f"cluster '{name}' not found in namespace '{namespace}'")
    if record["phase"] == "deleting":
        raise CliError(f"cluster '{name}' is being deleted")
    return store


def run_node_pool_set(invocation: Invocation) -> int:
    log = _log(invocation)
    cluster = invocation.args[0]
    namespace = str(invocation.get("namespace") or "default")
    path = str(invocation.get("file"))
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except (OSError, UnicodeDecodeError):
        raise CliError(f"unable to read file {path}") from None
    pool = parse_node_pool(text, f"node pool file {path!r}")
    store = _open_store_for_cluster(log, cluster, namespace)
    base = str(invocation.get("base_machine_deployment") or "")
    result: dict[str, str] = {}

    def mutate(record: dict) -> None:
        result["name"] = set_node_pool(record, pool, base)

    if update_record(store, namespace, cluster, mutate) is None:
        raise CliError(f"cluster '{cluster}' not found in namespace '{namespace}'")
    sync_planes(store, namespace, cluster, dict(os.environ))
    log.info(f"Node pool '{result['name']}' of cluster '{cluster}' updated")
    return 0


def run_node_pool_list(invocation: Invocation) -> int:
    log = _log(invocation)
    cluster = invocation.args[0]
    namespace = str(invocation.get("namespace") or "default")
    store = _open_store(log)
    with store.locked():
        record = store.load(namespace, cluster)
    if record is None:
        raise CliError(f"cluster '{cluster}' not found in namespace '{namespace}'")
    objects = [records.machine_deployment_object(record, item) for item in records.machine_deployments(record)]
    output = invocation.get("output") or ""
    if output == "json":
        write_stdout(render_json(objects))
    elif output == "yaml":
        write_stdout(render_yaml(objects))
    else:
        rows = [
            [
                item["metadata"]["name"], item["metadata"]["namespace"], item["status"]["phase"],
                str(item["status"]["replicas"]), str(item["status"]["readyReplicas"]),
                str(item["status"]["updatedReplicas"]), str(item["status"]["unavailableReplicas"]),
            ]
            for item in objects
        ]
        headers = ["NAME", "NAMESPACE", "PHASE", "REPLICAS", "READY", "UPDATED", "UNAVAILABLE"]
        write_stdout(render_table(headers, rows))
    return 0


def run_node_pool_delete(invocation: Invocation) -> int:
    log = _log(invocation)
    cluster = invocation.args[0]
    namespace = str(invocation.get("namespace") or "default")
    pool_name = str(invocation.get("name"))
    store = _open_store_for_cluster(log, cluster, namespace)
    if update_record(store, namespace, cluster, lambda record: delete_node_pool(record, pool_name)) is None:
        raise CliError(f"cluster '{cluster}' not found in namespace '{namespace}'")
    sync_planes(store, namespace, cluster, dict(os.environ))
    log.info(f"Node pool '{pool_name}' is being deleted")
    return 0


def run_plugin_version(_invocation: Invocation) -> int:
    write_stdout(f"{PLUGIN_VERSION}\n")
    return 0


def run_core_version(_invocation: Invocation) -> int:
    write_stdout(f"version: {CLI_CORE_VERSION}\nbuildDate: 2023-03-21\nsha: tanzu-test-double\n")
    return 0


def not_implemented(invocation: Invocation) -> int:
    raise CliError(f"'{invocation.command.path}' is not implemented by the tanzu test double")
