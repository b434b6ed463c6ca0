"""The management-role program: the etcd dial timeout of Cluster API's kubeadm control-plane controller.

A ``management`` stack tunes the management cluster, not a site. It reads the controller Deployment
(``capi-system/capi-kubeadm-control-plane-controller-manager`` by default) while the program runs, reports
the other managers of that Deployment, and declares a server-side apply patch that sets
``--etcd-dial-timeout-duration`` on the ``manager`` container and keeps every other argument in order.
Site stacks read this stack's ``kubeconfig`` and ``etcdDialTimeout`` outputs through a StackReference.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pulumi
import pulumi_kubernetes as kubernetes
import urllib3
import yaml
from kubernetes.client import ApiException, AppsV1Api

from components import kube_client, site
from components.config import ConfigError, ManagementConfig, ManagementSettings
from components.i18n import _

ETCD_DIAL_TIMEOUT_FLAG = "--etcd-dial-timeout-duration"
MANAGER_CONTAINER = "manager"
FIELD_MANAGER = "tkg-gpu"
"""Server-side apply field manager of every patch this program declares (``pulumi.com/patchFieldManager``)."""
REAPPLIED_ANNOTATION = "tkg-gpu/reapplied-at-generation"
"""Annotation whose value changes when the program finds its setting reverted, so ``pulumi up`` applies it again."""
REQUEST_TIMEOUT_SECONDS = 30

KAPP_KEYS = ("kapp.k14s.io/app", "kapp.k14s.io/association")
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
CLUSTERCTL_PREFIX = "clusterctl.cluster.x-k8s.io"


class ManagementClusterError(RuntimeError):
    """A request to the management cluster failed, or an object there is missing or has an unexpected shape."""


@dataclasses.dataclass(frozen=True)
class Kubeconfig:
    """A management-cluster kubeconfig whose current context is the one the stack selected."""

    text: str
    context: str
    server: str

    def document(self) -> dict[str, Any]:
        return yaml.safe_load(self.text)


def load_kubeconfig(settings: ManagementSettings, base_dir: pathlib.Path | None = None) -> Kubeconfig:
    """Read ``management.kubeconfig`` and select ``management.context`` (else the file's current context).

    Errors name the key and the path but never quote the file, because it contains credentials.
    """
    path = pathlib.Path(os.path.expanduser(settings.kubeconfig))
    if not path.is_absolute():
        path = (base_dir or site.project_directory()) / path

    key = "tkg-gpu:management.kubeconfig"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) and error.strerror else type(error).__name__
        raise ConfigError(
            _("{key}: cannot read {path}: {reason}. Export the management cluster's admin kubeconfig there with `tanzu management-cluster kubeconfig get --admin --export-file {path}`, or set the key to the file's path").format(
                key=key, path=path, reason=reason
            )
        ) from None

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        # The YAML error quotes the offending line, which may contain a key or token, so report only its position.
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else "?"
        raise ConfigError(
            _("{key}: {path} is not valid YAML (error at line {line})").format(key=key, path=path, line=line)
        ) from None

    context, server = select_context(document, settings.context, str(path))
    document["current-context"] = context

    return Kubeconfig(text=yaml.safe_dump(document, sort_keys=False), context=context, server=server)


def select_context(document: Any, context: str | None, path: str) -> tuple[str, str]:
    """Return the context to use and the API server URL of its cluster, or raise ConfigError."""
    if not isinstance(document, dict) or not isinstance(document.get("contexts"), list):
        raise ConfigError(
            _("tkg-gpu:management.kubeconfig: {path} is not a kubeconfig file (no contexts list)").format(path=path)
        )

    selected = context or document.get("current-context")
    if not selected:
        raise ConfigError(
            _("tkg-gpu:management.context: missing; {path} has no current-context, so set the context to use").format(path=path)
        )

    contexts = {item.get("name"): item.get("context") or {} for item in document["contexts"] if isinstance(item, dict)}
    if selected not in contexts:
        raise ConfigError(
            _("tkg-gpu:management.context: context {context} not found in {path}; it has: {names}").format(
                context=selected, path=path, names=", ".join(sorted(str(name) for name in contexts)) or "-"
            )
        )

    cluster_name = contexts[selected].get("cluster")
    clusters = {item.get("name"): item.get("cluster") or {} for item in document.get("clusters") or [] if isinstance(item, dict)}
    server = clusters.get(cluster_name, {}).get("server")
    if not server:
        raise ConfigError(
            _("tkg-gpu:management.kubeconfig: context {context} in {path} names cluster {cluster}, which has no server").format(
                context=selected, path=path, cluster=cluster_name
            )
        )

    return selected, server


@contextmanager
def api_client(kubeconfig: Kubeconfig | str) -> Iterator[Any]:
    """Yield a client of the official Kubernetes library for a kubeconfig's current context."""
    text = kubeconfig.text if isinstance(kubeconfig, Kubeconfig) else kubeconfig
    with kube_client.api_client(text, cluster=_("the management cluster"), error_type=ConfigError) as client:
        yield client


def server_of(kubeconfig_text: str) -> str:
    document = yaml.safe_load(kubeconfig_text)
    return select_context(document, None, "the management stack's kubeconfig output")[1]


def read_json(kubeconfig: Kubeconfig | str, read: Callable[[Any], Any], action: str) -> dict[str, Any] | None:
    """Run ``read(client)``, a read call made with ``_preload_content=False``, and decode the object it returns.

    Returns None when the API server returns 404 Not Found and raises ManagementClusterError on other failures.
    """
    with api_client(kubeconfig) as client:
        try:
            response = read(client)
        except ApiException as error:
            if error.status == 404:
                return None
            raise ManagementClusterError(f"{action}: HTTP {error.status} {error.reason}") from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise ManagementClusterError(f"{action}: {error}") from None

        return json.loads(response.data)


def read_deployment(kubeconfig: Kubeconfig, namespace: str, name: str) -> dict[str, Any]:
    """Read the controller Deployment as JSON (with managedFields), raising ManagementClusterError when absent."""
    def read(client: Any) -> Any:
        return AppsV1Api(client).read_namespaced_deployment(
            name, namespace, _preload_content=False, _request_timeout=REQUEST_TIMEOUT_SECONDS
        )

    try:
        deployment = read_json(kubeconfig, read, "read Deployment")
    except ManagementClusterError as error:
        raise ManagementClusterError(
            _("cannot read Deployment {namespace}/{name} from the management cluster {server}: {error}").format(
                namespace=namespace, name=name, server=kubeconfig.server, error=error
            )
        ) from None

    if deployment is None:
        raise ManagementClusterError(
            _("Deployment {namespace}/{name} not found in the management cluster {server} (context {context}); check management.controllerNamespace and management.controllerDeployment").format(
                namespace=namespace, name=name, server=kubeconfig.server, context=kubeconfig.context
            )
        )

    return deployment


# Pure helpers: argument merge, container choice and owner detection.


def _is_flag(arg: str, flag: str) -> bool:
    bare = flag.lstrip("-")
    return arg in (f"--{bare}", f"-{bare}") or arg.startswith((f"--{bare}=", f"-{bare}="))


def flag_value(args: list[str] | None, flag: str = ETCD_DIAL_TIMEOUT_FLAG) -> str | None:
    """Return the value the last occurrence of ``flag`` gives (Go's flag package keeps the last), or None."""
    value = None
    items = list(args or [])
    for index, arg in enumerate(items):
        if not _is_flag(arg, flag):
            continue
        if "=" in arg:
            value = arg.split("=", 1)[1]
        elif index + 1 < len(items):
            value = items[index + 1]

    return value


def merge_flag(args: list[str] | None, value: str, flag: str = ETCD_DIAL_TIMEOUT_FLAG) -> list[str]:
    """Return ``args`` with ``flag=value`` in place of every occurrence of the flag, or appended when absent.

    Both ``--flag=v`` and ``--flag v`` (two items) are replaced by one ``--flag=value`` item at the same position.
    """
    merged: list[str] = []
    items = list(args or [])
    found = False
    index = 0
    while index < len(items):
        arg = items[index]
        if _is_flag(arg, flag):
            merged.append(f"{flag}={value}")
            found = True
            # The two-item form also consumes the next item, its value.
            index += 1 if "=" in arg else 2
            continue
        merged.append(arg)
        index += 1

    if not found:
        merged.append(f"{flag}={value}")

    return merged


def manager_container(deployment: Mapping[str, Any], name: str = MANAGER_CONTAINER) -> tuple[int, dict[str, Any]]:
    """Return the index and object of the container named ``name``, else of the only container."""
    containers = deployment.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    for index, container in enumerate(containers):
        if container.get("name") == name:
            return index, container

    if len(containers) == 1:
        return 0, containers[0]

    metadata = deployment.get("metadata", {})
    raise ManagementClusterError(
        _("Deployment {namespace}/{name} has no container named {container} and {count} containers ({names}); cannot tell which one runs the controller").format(
            namespace=metadata.get("namespace"),
            name=metadata.get("name"),
            container=name,
            count=len(containers),
            names=", ".join(str(item.get("name")) for item in containers) or "-",
        )
    )


def _is_own_manager(manager: str) -> bool:
    # A patch without the patchFieldManager annotation gets a random "pulumi-kubernetes-..." manager name.
    return manager == FIELD_MANAGER or manager.startswith("pulumi-kubernetes")


def _owns_args(fields: Mapping[str, Any], container: str) -> bool:
    containers = fields.get("f:spec", {}).get("f:template", {}).get("f:spec", {}).get("f:containers", {})
    # managedFields name an entry of a list keyed by name as k:{"name":"<name>"}.
    entry = containers.get("k:" + json.dumps({"name": container}, separators=(",", ":")), {})
    return "f:args" in entry


def detect_owners(deployment: Mapping[str, Any], container: str = MANAGER_CONTAINER) -> list[str]:
    """Describe who else manages the Deployment: packaging labels and field managers of the container's args."""
    metadata = deployment.get("metadata", {})
    labels = metadata.get("labels") or {}
    annotations = metadata.get("annotations") or {}
    owners: list[str] = []

    kapp = [f"{key}={labels.get(key, annotations.get(key))}" for key in KAPP_KEYS if key in labels or key in annotations]
    if kapp:
        owners.append(f"kapp-controller ({', '.join(kapp)})")

    managed_by = labels.get(MANAGED_BY_LABEL)
    if managed_by:
        owners.append(f"{managed_by} ({MANAGED_BY_LABEL}={managed_by})")

    for key, value in sorted(labels.items()):
        if key == CLUSTERCTL_PREFIX or key.startswith(f"{CLUSTERCTL_PREFIX}/"):
            owners.append(f"clusterctl ({key}={value})" if value else f"clusterctl ({key})")

    for entry in metadata.get("managedFields") or []:
        manager = entry.get("manager", "")
        if _is_own_manager(manager) or not _owns_args(entry.get("fieldsV1") or {}, container):
            continue
        owners.append(
            f"field manager {manager} ({entry.get('operation', '?')}) owns spec.template.spec.containers[{container}].args"
        )

    return owners


def reapply_marker(metadata: Mapping[str, Any], in_sync: bool) -> str | None:
    """Return the value of REAPPLIED_ANNOTATION to declare.

    Pulumi diffs against its state, which still contains the old live object after someone reverts the setting,
    so an unchanged program would report no changes. While the live object is in sync the marker keeps its
    live value (no diff). When it is not, the marker takes the object's current generation, which differs
    from any earlier marker because every spec change increases the generation, and the update re-applies.
    """
    current = (metadata.get("annotations") or {}).get(REAPPLIED_ANNOTATION)
    if in_sync:
        return current

    return str(metadata.get("generation", 0))


def controller_patch(deployment: Mapping[str, Any], timeout: str) -> tuple[list[dict[str, Any]], list[str], bool]:
    """Return the containers list to apply, the manager's new args and whether the live args already match.

    Containers listed before the manager appear by name only, so the provider's index-wise diff of the
    containers list lines up with the live object. They add no field except their list key.
    """
    index, container = manager_container(deployment)
    containers = deployment["spec"]["template"]["spec"]["containers"]
    live_args = container.get("args")
    args = merge_flag(live_args, timeout)
    patch = [{"name": item["name"]} for item in containers[:index]]
    patch.append({"name": container["name"], "args": args})

    return patch, args, live_args == args


def owner_warning(namespace: str, name: str, owners: list[str]) -> str:
    return _(
        "Deployment {namespace}/{name} is also managed by: {owners}. A later management-cluster upgrade or package "
        "reconcile may revert {flag}; the durable route is the owning package's overlay (for a kapp-controller "
        "package, a ytt overlay Secret referenced by its PackageInstall). Re-run `pulumi up` on this stack after "
        "every management-cluster upgrade."
    ).format(namespace=namespace, name=name, owners="; ".join(owners), flag=ETCD_DIAL_TIMEOUT_FLAG)


def drift_message(namespace: str, name: str, container: str, live: str | None, value: str) -> str:
    if live is None:
        text = _("Deployment {namespace}/{name}: container {container} runs without {flag} (Cluster API default 10s); this update sets {value}")
    else:
        text = _("Deployment {namespace}/{name}: container {container} has {flag}={live}; this update sets {value}")

    return text.format(namespace=namespace, name=name, container=container, flag=ETCD_DIAL_TIMEOUT_FLAG, live=live, value=value)


def declare_management(cfg: ManagementConfig, base_dir: pathlib.Path | None = None) -> dict[str, Any]:
    """Declare the management stack's resources and return its outputs by export name.

    Raises ConfigError for an unreadable kubeconfig or unknown context, and pulumi.RunError when the
    management cluster cannot be read or the Deployment is missing.
    """
    settings = cfg.management
    kubeconfig = load_kubeconfig(settings, base_dir)
    namespace, name = settings.controller_namespace, settings.controller_deployment
    try:
        deployment = read_deployment(kubeconfig, namespace, name)
        containers, args, in_sync = controller_patch(deployment, settings.etcd_dial_timeout)
    except ManagementClusterError as error:
        raise pulumi.RunError(str(error)) from None

    container = containers[-1]["name"]
    owners = detect_owners(deployment, container)
    if owners:
        pulumi.log.warn(owner_warning(namespace, name, owners))
    if not in_sync:
        live = flag_value(manager_container(deployment)[1].get("args"))
        pulumi.log.info(drift_message(namespace, name, container, live, settings.etcd_dial_timeout))

    provider = kubernetes.Provider(
        "management-cluster",
        kubeconfig=pulumi.Output.secret(kubeconfig.text),
        context=kubeconfig.context,
        enable_server_side_apply=True,
    )

    annotations = {"pulumi.com/patchForce": "true", "pulumi.com/patchFieldManager": FIELD_MANAGER}
    marker = reapply_marker(deployment.get("metadata", {}), in_sync)
    if marker is not None:
        annotations[REAPPLIED_ANNOTATION] = marker

    patch = kubernetes.apps.v1.DeploymentPatch(
        "kubeadm-control-plane-controller",
        metadata=kubernetes.meta.v1.ObjectMetaPatchArgs(name=name, namespace=namespace, annotations=annotations),
        spec=kubernetes.apps.v1.DeploymentSpecPatchArgs(
            template=kubernetes.core.v1.PodTemplateSpecPatchArgs(
                spec=kubernetes.core.v1.PodSpecPatchArgs(
                    containers=[kubernetes.core.v1.ContainerPatchArgs(**item) for item in containers]
                )
            )
        ),
        # Deleting a patch gives up its fields, and the API server removes fields that no other manager owns.
        # After the forced apply this stack is the only owner of the args list, so a delete would leave the
        # controller with no arguments at all. The flag therefore stays on the Deployment on destroy.
        opts=pulumi.ResourceOptions(provider=provider, retain_on_delete=True),
    )

    applied_args = patch.spec.apply(lambda spec: _container_args(spec, container))

    return {
        "etcdDialTimeout": applied_args.apply(flag_value),
        "controllerArgs": applied_args,
        "controllerOwners": owners,
        "kubeconfig": pulumi.Output.secret(kubeconfig.text),
        "managementClusterServer": kubeconfig.server,
    }


def _container_args(spec: Any, container: str) -> list[str]:
    """Return the args of ``container`` in a DeploymentPatch's output spec (typed objects or plain dicts)."""

    def field(value: Any, key: str, attribute: str) -> Any:
        if value is None:
            return None
        if isinstance(value, Mapping):
            return value.get(key)
        return getattr(value, attribute, None)

    template = field(spec, "template", "template")
    pod = field(template, "spec", "spec")
    for item in field(pod, "containers", "containers") or []:
        if field(item, "name", "name") == container:
            return list(field(item, "args", "args") or [])

    return []
