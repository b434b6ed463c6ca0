"""The lab's Kubernetes control planes: Cluster API objects and Nodes of the double's clusters.

With TANZU_DOUBLE_MANAGEMENT_KUBECONFIG set, the double keeps the CAPI objects of each cluster
(capi_objects.py) in that management cluster, as TKG's providers would. With
TANZU_DOUBLE_WORKLOAD_KUBECONFIG set, it keeps one kwok Node per running machine
(node_objects.py) in that workload cluster. Both variables name kubeconfig files. Without
either variable nothing here runs and the kubernetes client package is never imported.

`sync()` writes the objects that the record describes and removes the ones it no longer
describes. `remove()` deletes everything of a cluster once its deletion completes. Changes go
through read-modify-write of the live objects, so fields that other managers set survive, for
example a MachineHealthCheck in the Cluster's topology. The double only sets the fields it owns.
Any failure raises PlaneError, which names the cluster role (management or workload), the
action and the API server's message. Kubeconfig contents never appear in it.

The switch file `$TANZU_DOUBLE_STATE_DIR/switches/workers-without-gpu` makes worker Nodes
advertise no nvidia.com/gpu. It is read at every sync, so existing Nodes follow it on the next
command that changes the cluster.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import copy
import json
import logging
import os
import shutil
import ssl
import tempfile
import time
from typing import Any, Callable

import yaml

from . import capi_objects, node_objects, records
from .errors import CliError
from .kubeconfig import SOURCE_KUBECONFIG_VARIABLE, admin_kubeconfig, self_contained

MANAGEMENT_KUBECONFIG_VARIABLE = "TANZU_DOUBLE_MANAGEMENT_KUBECONFIG"
WORKLOAD_KUBECONFIG_VARIABLE = SOURCE_KUBECONFIG_VARIABLE
SWITCHES_DIRECTORY = "switches"
WORKERS_WITHOUT_GPU_SWITCH = "workers-without-gpu"
# Seconds to connect and to read one response. The lab's API servers respond in milliseconds.
REQUEST_TIMEOUT = (5, 30)
# Attempts of one read-modify-write when another writer changes the object in between (HTTP 409).
UPDATE_ATTEMPTS = 5
NODE_API = ("v1", "Node")
SECRET_API = ("v1", "Secret")
CLUSTER_API = (capi_objects.CLUSTER_API_VERSION, "Cluster")
MACHINE_DEPLOYMENT_API = (capi_objects.CLUSTER_API_VERSION, "MachineDeployment")
CONTROL_PLANE_API = (capi_objects.CONTROL_PLANE_API_VERSION, "KubeadmControlPlane")
NAMESPACE_API = ("v1", "Namespace")
CRD_API = ("apiextensions.k8s.io/v1", "CustomResourceDefinition")
CLUSTER_ROLE_API = ("rbac.authorization.k8s.io/v1", "ClusterRole")
CLUSTER_ROLE_BINDING_API = ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding")
# Namespaces a new cluster starts with. A deleted cluster takes every other namespace along.
SYSTEM_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
LAB_CRD_GROUP = "kwok.x-k8s.io"
NAMESPACE_DELETION_TIMEOUT_SECONDS = 120


class PlaneError(CliError):
    """A request to the management or workload cluster failed. `status` is the HTTP status, if any."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


_client_files_directory: str | None = None


def _client_files() -> str:
    """Return a private directory for the client certificates that the kubernetes client writes.

    The client needs certificates and keys in files for TLS, and writes embedded ones to
    temporary files. They go to one 0700 directory per process, removed when the process exits.
    NOTE: a process killed with SIGKILL leaves that directory behind in the temporary directory.
    """
    global _client_files_directory
    if _client_files_directory is None:
        _client_files_directory = tempfile.mkdtemp(prefix="tanzu-double-kube-")
        atexit.register(shutil.rmtree, _client_files_directory, True)
    return _client_files_directory


def switch_on(state_dir: str, name: str) -> bool:
    return os.path.exists(os.path.join(state_dir, SWITCHES_DIRECTORY, name))


def _yaml_error_position(error: yaml.YAMLError) -> str:
    """Describe where a YAML error is without quoting the text, which may hold a key."""
    mark = getattr(error, "problem_mark", None)
    return f" (line {mark.line + 1})" if mark is not None else ""


def _api_message(error: Exception) -> str:
    """Return `HTTP <code> <reason>: <message>` of an API error, the message from its Status body."""
    status = getattr(error, "status", None)
    reason = getattr(error, "reason", "") or ""
    message = ""
    body = getattr(error, "body", None)
    if body:
        try:
            message = str(json.loads(body).get("message", ""))
        except (ValueError, AttributeError):
            message = ""
    text = f"HTTP {status} {reason}".strip()
    return f"{text}: {message}" if message else text


class Plane:
    """One Kubernetes API server, reached with the current context of a kubeconfig file."""

    def __init__(self, role: str, variable: str, path: str):
        self.role = role
        self.variable = variable
        self.path = path
        self._dynamic_client: Any = None
        self._server = ""

    def _fail(self, action: str, detail: str, status: int | None = None) -> PlaneError:
        return PlaneError(f"{self.role} cluster ({self.variable}): {action} failed: {detail}", status)

    def _load(self) -> Any:
        try:
            with open(self.path, encoding="utf-8") as stream:
                document = yaml.safe_load(stream)
        except OSError as error:
            raise self._fail("reading the kubeconfig file", f"{self.path}: {error.strerror}") from None
        except yaml.YAMLError as error:
            raise self._fail("reading the kubeconfig file", f"{self.path} is not valid YAML{_yaml_error_position(error)}") from None
        if not isinstance(document, dict):
            raise self._fail("reading the kubeconfig file", f"{self.path} is not a kubeconfig")

        # Imported here: the package is large and the double needs it only for the lab's clusters.
        from kubernetes import client, config, dynamic
        from kubernetes.config.config_exception import ConfigException

        logging.getLogger("urllib3").setLevel(logging.ERROR)
        # proxy="" keeps proxy variables of the environment away from the lab's loopback servers.
        configuration = client.Configuration(proxy="")
        configuration.retries = 1
        try:
            config.load_kube_config_from_dict(
                document,
                client_configuration=configuration,
                persist_config=False,
                temp_file_path=_client_files(),
            )
        except ConfigException as error:
            raise self._fail("loading the kubeconfig", f"{self.path}: {error}") from None
        except (ValueError, TypeError, KeyError, AttributeError, binascii.Error) as error:
            raise self._fail("loading the kubeconfig", f"{self.path}: invalid {type(error).__name__}") from None
        self._server = str(configuration.host)
        api_client = client.ApiClient(configuration)
        cache_file = os.path.join(_client_files(), f"discovery-{self.role}.json")
        # The client reads the API server's discovery documents as it starts.
        return self._call("reading the API discovery", lambda: dynamic.DynamicClient(api_client, cache_file=cache_file))

    def _call(self, action: str, function: Callable[[], Any]) -> Any:
        """Run one request and turn every failure into PlaneError."""
        from kubernetes.client.exceptions import ApiException
        from kubernetes.dynamic.exceptions import ResourceNotFoundError
        from urllib3.exceptions import HTTPError, MaxRetryError

        try:
            return function()
        except ResourceNotFoundError:
            raise self._fail(action, "the API server does not serve this kind; install its CustomResourceDefinition first") from None
        except ApiException as error:
            raise self._fail(action, _api_message(error), error.status) from None
        except MaxRetryError as error:
            raise self._fail(action, f"cannot connect to {self._server}: {error.reason}") from None
        except (HTTPError, ssl.SSLError, OSError) as error:
            raise self._fail(action, f"cannot connect to {self._server}: {error}") from None

    def _client(self) -> Any:
        if self._dynamic_client is None:
            self._dynamic_client = self._load()
        return self._dynamic_client

    def _resource(self, api: tuple[str, str]) -> Any:
        api_version, kind = api
        return self._call(
            f"finding kind {kind} ({api_version})",
            lambda: self._client().resources.get(api_version=api_version, kind=kind),
        )

    @staticmethod
    def _describe(api: tuple[str, str], name: str, namespace: str | None) -> str:
        return f"{api[1]} {namespace}/{name}" if namespace else f"{api[1]} {name}"

    def get(self, api: tuple[str, str], name: str, namespace: str | None = None) -> dict | None:
        from kubernetes.dynamic.exceptions import NotFoundError

        resource = self._resource(api)

        def read() -> dict | None:
            try:
                return resource.get(name=name, namespace=namespace, _request_timeout=REQUEST_TIMEOUT).to_dict()
            except NotFoundError:
                return None

        return self._call(f"reading {self._describe(api, name, namespace)}", read)

    def list(self, api: tuple[str, str], namespace: str | None = None, label_selector: str | None = None) -> list[dict]:
        resource = self._resource(api)
        where = f" in namespace {namespace}" if namespace else ""
        result = self._call(
            f"listing {api[1]} objects{where}",
            lambda: resource.get(namespace=namespace, label_selector=label_selector, _request_timeout=REQUEST_TIMEOUT),
        )
        return list(result.to_dict().get("items") or [])

    def create(self, api: tuple[str, str], body: dict) -> dict:
        resource = self._resource(api)
        metadata = body["metadata"]
        return self._call(
            f"creating {self._describe(api, metadata['name'], metadata.get('namespace'))}",
            lambda: resource.create(body=body, namespace=metadata.get("namespace"), _request_timeout=REQUEST_TIMEOUT).to_dict(),
        )

    def replace(self, api: tuple[str, str], body: dict) -> dict:
        resource = self._resource(api)
        metadata = body["metadata"]
        return self._call(
            f"updating {self._describe(api, metadata['name'], metadata.get('namespace'))}",
            lambda: resource.replace(body=body, namespace=metadata.get("namespace"), _request_timeout=REQUEST_TIMEOUT).to_dict(),
        )

    def patch_status(self, api: tuple[str, str], name: str, namespace: str | None, status: dict) -> dict:
        """Merge `status` into an object, through its status subresource when the API server has one.

        A JSON merge patch needs no resourceVersion, so it does not conflict with controllers
        such as kwok that write the status at the same time. A key set to None is removed.
        """
        resource = self._resource(api)
        target = resource.subresources["status"] if "status" in (resource.subresources or {}) else resource
        return self._call(
            f"updating the status of {self._describe(api, name, namespace)}",
            lambda: target.patch(
                body={"status": status},
                name=name,
                namespace=namespace,
                content_type="application/merge-patch+json",
                _request_timeout=REQUEST_TIMEOUT,
            ).to_dict(),
        )

    def delete(self, api: tuple[str, str], name: str, namespace: str | None = None) -> None:
        """Delete an object; one that is already gone counts as deleted."""
        from kubernetes.dynamic.exceptions import NotFoundError

        resource = self._resource(api)

        def remove() -> None:
            try:
                resource.delete(name=name, namespace=namespace, _request_timeout=REQUEST_TIMEOUT)
            except NotFoundError:
                pass

        self._call(f"deleting {self._describe(api, name, namespace)}", remove)


def _updated(plane: Plane, api: tuple[str, str], name: str, namespace: str | None, change: Callable[[dict], dict | None]) -> dict | None:
    """Read an object, let `change` return the new body (None: unchanged), and write it.

    Retries when another writer changed the object in between. Returns the live object, or None
    when it does not exist.
    """
    for attempt in range(UPDATE_ATTEMPTS):
        live = plane.get(api, name, namespace)
        if live is None:
            return None
        body = change(copy.deepcopy(live))
        if body is None:
            return live
        try:
            return plane.replace(api, body)
        except PlaneError as error:
            if error.status != 409 or attempt == UPDATE_ATTEMPTS - 1:
                raise
    return None


def _write_status(plane: Plane, api: tuple[str, str], live: dict, status: dict) -> dict:
    """Give a live CAPI object `status`, with observedGeneration set to its generation."""
    status = dict(status)
    generation = live.get("metadata", {}).get("generation")
    if generation is not None:
        status["observedGeneration"] = generation
    current = live.get("status") or {}
    if all(current.get(key) == value for key, value in status.items()):
        return live
    metadata = live["metadata"]
    return plane.patch_status(api, metadata["name"], metadata.get("namespace"), status)


def _merge_metadata(live: dict, desired: dict) -> bool:
    """Add the desired labels, annotations and owner references to `live`. Returns whether it changed."""
    changed = False
    for key in ("labels", "annotations"):
        desired_values = desired["metadata"].get(key) or {}
        current = live["metadata"].setdefault(key, {}) or {}
        live["metadata"][key] = current
        for label, value in desired_values.items():
            if current.get(label) != value:
                current[label] = value
                changed = True
    owners = desired["metadata"].get("ownerReferences")
    if owners and not live["metadata"].get("ownerReferences"):
        live["metadata"]["ownerReferences"] = owners
        changed = True
    return changed


def _ensure(plane: Plane, api: tuple[str, str], desired: dict, merge_spec: Callable[[dict, dict], bool]) -> dict:
    """Create `desired`, or update the live object with `merge_spec`, and then write its status."""
    metadata = desired["metadata"]
    status = desired.get("status")

    def change(live: dict) -> dict | None:
        changed = _merge_metadata(live, desired)
        changed = merge_spec(live, desired) or changed
        return live if changed else None

    live = _updated(plane, api, metadata["name"], metadata.get("namespace"), change)
    if live is None:
        # The API server drops `status` on create when the kind has a status subresource.
        live = plane.create(api, desired)
    if status is not None:
        live = _write_status(plane, api, live, status)
    return live


def _replace_spec_keys(live: dict, desired: dict) -> bool:
    """Set every top-level key of the desired spec; other keys of the live spec stay."""
    spec = live.setdefault("spec", {})
    changed = False
    for key, value in desired.get("spec", {}).items():
        if spec.get(key) != value:
            spec[key] = copy.deepcopy(value)
            changed = True
    return changed


def _merge_topology(live: dict, desired: dict) -> bool:
    """Bring the live Cluster topology in line with the record: replicas, version and node pools.

    Keys the record does not have, such as machineHealthCheck blocks that another manager
    added, stay. Topology variables are written at create only.
    """
    topology = live.setdefault("spec", {}).setdefault("topology", {})
    desired_topology = desired["spec"]["topology"]
    before = copy.deepcopy(topology)
    topology["version"] = desired_topology["version"]
    topology.setdefault("controlPlane", {})["replicas"] = desired_topology["controlPlane"]["replicas"]
    workers = topology.setdefault("workers", {})
    live_pools = {item.get("name"): item for item in workers.get("machineDeployments") or []}
    pools = []
    for pool in desired_topology["workers"]["machineDeployments"]:
        entry = live_pools.get(pool["name"], {})
        entry.update(copy.deepcopy(pool))
        pools.append(entry)
    workers["machineDeployments"] = pools
    return topology != before


def _sync_management(plane: Plane, record: dict, environ: dict[str, str]) -> None:
    cluster = _ensure(plane, CLUSTER_API, capi_objects.cluster_object(record), _merge_topology)
    control_plane = _ensure(
        plane, CONTROL_PLANE_API, capi_objects.kubeadm_control_plane_object(record, cluster), _replace_spec_keys
    )

    desired = capi_objects.machine_deployment_objects(record, cluster)
    for item in desired:
        _ensure(plane, MACHINE_DEPLOYMENT_API, item, _replace_spec_keys)
    desired_names = {item["metadata"]["name"] for item in desired}
    selector = f"{capi_objects.CLUSTER_NAME_LABEL}={record['name']}"
    for item in plane.list(MACHINE_DEPLOYMENT_API, record["namespace"], selector):
        if item["metadata"]["name"] not in desired_names:
            plane.delete(MACHINE_DEPLOYMENT_API, item["metadata"]["name"], record["namespace"])

    # CAPI writes the kubeconfig Secret once the first control plane machine is up.
    if records.control_plane_ready(record):
        kubeconfig = self_contained(admin_kubeconfig(record["name"], record["workloadServer"], environ))
        secret = capi_objects.kubeconfig_secret_object(record, kubeconfig, control_plane)

        def merge_data(live: dict, desired_secret: dict) -> bool:
            changed = live.get("data") != desired_secret["data"]
            live["data"] = desired_secret["data"]
            return changed

        _ensure(plane, SECRET_API, secret, merge_data)


def _same_quantity(current: object, expected: str) -> bool:
    """Compare resource quantities by value: the API server stores 8192Mi as 8Gi."""
    from kubernetes.utils.quantity import parse_quantity

    if current is None:
        return False
    try:
        return parse_quantity(current) == parse_quantity(expected)
    except ValueError:
        return current == expected


def _node_status_patch(live: dict, desired: dict) -> dict:
    """Return the status keys of a Node that differ from the desired ones; empty when none do.

    Only the resources the double manages are compared, because kwok adds conditions,
    addresses and heartbeats. nodeInfo is written once, when the Node has none.
    """
    current = live.get("status") or {}
    patch: dict[str, object] = {}
    for key in ("capacity", "allocatable"):
        desired_resources = desired["status"][key]
        have = current.get(key) or {}
        difference: dict[str, object] = {
            name: value for name, value in desired_resources.items() if not _same_quantity(have.get(name), value)
        }
        if node_objects.GPU_RESOURCE in have and node_objects.GPU_RESOURCE not in desired_resources:
            difference[node_objects.GPU_RESOURCE] = None
        if difference:
            patch[key] = difference
    if not (current.get("nodeInfo") or {}).get("kubeletVersion"):
        patch["nodeInfo"] = desired["status"]["nodeInfo"]
    return patch


def _metadata_change(desired: dict) -> Callable[[dict], dict | None]:
    """Return a change for _updated() that adds the desired labels and annotations."""

    def change(live: dict) -> dict | None:
        return live if _merge_metadata(live, desired) else None

    return change


def _sync_nodes(plane: Plane, record: dict, workers_without_gpu: bool) -> None:
    desired = {node["metadata"]["name"]: node for node in node_objects.node_objects(record, workers_without_gpu)}
    for node in plane.list(NODE_API):
        name = node["metadata"]["name"]
        if node_objects.belongs_to(node, record["namespace"], record["name"]) and name not in desired:
            plane.delete(NODE_API, name)

    for name, node in desired.items():
        # Labels and annotations follow the record. Taints are set only when the Node is created,
        # as the kubelet registers them once and controllers add their own later.
        live = _updated(plane, NODE_API, name, None, _metadata_change(node))
        if live is None:
            live = plane.create(NODE_API, node)
        patch = _node_status_patch(live, node)
        if patch:
            plane.patch_status(NODE_API, name, None, patch)


def _remove_management(plane: Plane, record: dict) -> None:
    namespace = record["namespace"]
    plane.delete(SECRET_API, capi_objects.kubeconfig_secret_name(record["name"]), namespace)
    selector = f"{capi_objects.CLUSTER_NAME_LABEL}={record['name']}"
    for item in plane.list(MACHINE_DEPLOYMENT_API, namespace, selector):
        plane.delete(MACHINE_DEPLOYMENT_API, item["metadata"]["name"], namespace)
    plane.delete(CONTROL_PLANE_API, capi_objects.control_plane_name(record), namespace)
    plane.delete(CLUSTER_API, record["name"], namespace)


def _remove_nodes(plane: Plane, record: dict) -> None:
    for node in plane.list(NODE_API):
        if node_objects.belongs_to(node, record["namespace"], record["name"]):
            plane.delete(NODE_API, node["metadata"]["name"])


def _clear_workload(plane: Plane) -> None:
    """Delete what was installed into the workload cluster, as deleting the real cluster would take it along.

    The lab's workload cluster outlives the clusters the double creates in it. So the namespaces other than the
    system ones, the Helm-managed cluster roles and the CRDs other than kwok's own are deleted here. The function
    waits for the namespaces to go, so that a cluster created next finds none of them terminating. While Nodes of
    another cluster remain, the workload cluster is shared and nothing is deleted.
    """
    if any(node_objects.CLUSTER_NAME_ANNOTATION in (node["metadata"].get("annotations") or {}) for node in plane.list(NODE_API)):
        return

    doomed = [item["metadata"]["name"] for item in plane.list(NAMESPACE_API) if item["metadata"]["name"] not in SYSTEM_NAMESPACES]
    for name in doomed:
        plane.delete(NAMESPACE_API, name)
    for api in (CLUSTER_ROLE_BINDING_API, CLUSTER_ROLE_API):
        for item in plane.list(api, label_selector="app.kubernetes.io/managed-by=Helm"):
            plane.delete(api, item["metadata"]["name"])
    for item in plane.list(CRD_API):
        if item["spec"]["group"] != LAB_CRD_GROUP:
            plane.delete(CRD_API, item["metadata"]["name"])

    deadline = time.monotonic() + NAMESPACE_DELETION_TIMEOUT_SECONDS
    while any(plane.get(NAMESPACE_API, name) is not None for name in doomed):
        if time.monotonic() > deadline:
            raise PlaneError(f"workload cluster: namespaces {', '.join(doomed)} still exist {NAMESPACE_DELETION_TIMEOUT_SECONDS} s after deletion")
        time.sleep(0.5)


class Planes:
    """The management and workload clusters named by the environment; either may be absent."""

    def __init__(self, environ: dict[str, str], state_dir: str):
        management = environ.get(MANAGEMENT_KUBECONFIG_VARIABLE, "")
        workload = environ.get(WORKLOAD_KUBECONFIG_VARIABLE, "")
        self.environ = environ
        self.state_dir = state_dir
        self.management = Plane("management", MANAGEMENT_KUBECONFIG_VARIABLE, management) if management else None
        self.workload = Plane("workload", WORKLOAD_KUBECONFIG_VARIABLE, workload) if workload else None

    @property
    def enabled(self) -> bool:
        return self.management is not None or self.workload is not None

    def check_name_free(self, namespace: str, name: str) -> None:
        """Raise CliError when the management cluster already has a Cluster of that name."""
        if self.management is None:
            return
        if self.management.get(CLUSTER_API, name, namespace) is not None:
            raise CliError(
                f"cluster '{name}' already exists in namespace '{namespace}' of the management cluster; "
                "choose another name or delete the Cluster object"
            )

    def sync(self, record: dict) -> None:
        """Write the objects of the record into both clusters and remove the ones it no longer has."""
        if self.management is not None:
            _sync_management(self.management, record, self.environ)
        if self.workload is not None:
            _sync_nodes(self.workload, record, switch_on(self.state_dir, WORKERS_WITHOUT_GPU_SWITCH))

    def remove(self, record: dict) -> None:
        """Delete the Nodes and the CAPI objects of a deleted cluster. Missing objects are fine."""
        if self.workload is not None:
            _remove_nodes(self.workload, record)
            _clear_workload(self.workload)
        if self.management is not None:
            _remove_management(self.management, record)

    def read_kubeconfig(self, namespace: str, name: str) -> dict:
        """Return the admin kubeconfig from the Secret `<name>-kubeconfig` in the management cluster."""
        assert self.management is not None
        secret_name = capi_objects.kubeconfig_secret_name(name)
        secret = self.management.get(SECRET_API, secret_name, namespace)
        if secret is None:
            raise CliError(
                f"unable to get the kubeconfig of cluster '{name}': Secret {namespace}/{secret_name} "
                "not found in the management cluster"
            )
        encoded = (secret.get("data") or {}).get(capi_objects.KUBECONFIG_SECRET_KEY, "")
        problem = f"unable to get the kubeconfig of cluster '{name}': Secret {namespace}/{secret_name}"
        try:
            document = yaml.safe_load(base64.b64decode(encoded, validate=True).decode("utf-8"))
        except (binascii.Error, UnicodeDecodeError):
            raise CliError(f"{problem} has no valid base64 text in key '{capi_objects.KUBECONFIG_SECRET_KEY}'") from None
        except yaml.YAMLError as error:
            raise CliError(f"{problem} contains invalid YAML{_yaml_error_position(error)}") from None
        if not isinstance(document, dict) or not all(isinstance(document.get(key), list) for key in ("clusters", "contexts", "users")):
            raise CliError(f"{problem} does not contain a kubeconfig in key '{capi_objects.KUBECONFIG_SECRET_KEY}'")
        return document


def planes_from_env(environ: dict[str, str], state_dir: str) -> Planes | None:
    """Return the clusters that the environment names, or None when it names neither."""
    planes = Planes(environ, state_dir)
    return planes if planes.enabled else None

