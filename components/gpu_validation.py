"""The CUDA vector-add validation: a Pod that needs one GPU and a dynamic resource that waits for its result.

The Pod (``cuda-vector-add``) is an ordinary Kubernetes resource created with ``pulumi.com/skipAwait``, so
Pulumi does not wait for it. ``CudaValidation`` then polls the workload cluster's API server with the
official ``kubernetes`` client: the Pod must reach phase Succeeded with "Test PASSED" in its log, and the
nodes must advertise the expected number of ``nvidia.com/gpu`` in total.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from typing import Any

import kubernetes.client
import pulumi
import pulumi_kubernetes as k8s
import urllib3
from pulumi import dynamic

from components import kube_client
from components.config import RegistrySettings, ValidationSettings, duration_seconds
from components.i18n import _

# Bumped whenever the provider code changes, so the engine stores the new pickled provider.
PROVIDER_VERSION = "1"

POD_NAME = "cuda-vector-add"
CONTAINER_NAME = "cuda-vector-add"
GPU_RESOURCE = "nvidia.com/gpu"
PASSED_MARKER = "Test PASSED"
NAME_LABEL = "app.kubernetes.io/name"
PART_OF_LABEL = "app.kubernetes.io/part-of"
PART_OF = "tkg-gpu-validation"
LOG_TAIL_LINES = 10
POLL_INTERVAL_SECONDS = 2.0
REQUEST_TIMEOUT_SECONDS = 30.0

# Container waiting reasons that do not clear up by themselves, so the wait ends before the timeout.
FATAL_WAITING_REASONS = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "CreateContainerConfigError"}
)
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})

_OUTPUT_KEYS = ("result", "node", "allocatable_gpus", "log_tail")


class GpuValidationError(RuntimeError):
    """The validation failed or could not run. The message gives the reason and never contains the kubeconfig."""


# ---------------------------------------------------------------------------------------------------------
# Image reference


def validation_image(image: str, registry: RegistrySettings | None) -> str:
    """Return the test image, moved into the site registry when one is set.

    ``registry.k8s.io/cuda-vector-add:v0.1`` with the repository ``harbor.example.com/tkg`` becomes
    ``harbor.example.com/tkg/cuda-vector-add:v0.1``: the last path element keeps its tag and digest. An image
    already inside the repository is kept as written.
    """
    if registry is None:
        return image

    repository = registry.repository.rstrip("/")
    if image.startswith(repository + "/"):
        return image

    return f"{repository}/{image.rsplit('/', 1)[-1]}"


# ---------------------------------------------------------------------------------------------------------
# Evaluation of API objects, given as the JSON dicts the API server returns (camelCase keys)


def _phase(pod: Mapping[str, Any]) -> str | None:
    return (pod.get("status") or {}).get("phase")


def _quantity(value: Any) -> int:
    """Return an extended-resource quantity such as ``"2"`` as int; Kubernetes allows only whole numbers there."""
    try:
        return int(str(value).strip())
    except ValueError:
        return 0


def _node_name(node: Mapping[str, Any]) -> str:
    return str((node.get("metadata") or {}).get("name") or "?")


def _pod_name(pod: Mapping[str, Any]) -> str:
    metadata = pod.get("metadata") or {}

    return f"{metadata.get('namespace') or '?'}/{metadata.get('name') or '?'}"


def gpu_allocatable(nodes: list[Mapping[str, Any]]) -> dict[str, int]:
    """Return allocatable ``nvidia.com/gpu`` by node name, for the nodes that advertise the resource."""
    found = {}
    for node in nodes:
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        if GPU_RESOURCE in allocatable:
            found[_node_name(node)] = _quantity(allocatable[GPU_RESOURCE])

    return found


def allocatable_problem(nodes: list[Mapping[str, Any]], expected: int) -> str | None:
    """Describe a mismatch between the total allocatable GPUs and ``expected``, listing every node; else None."""
    per_node = gpu_allocatable(nodes)
    total = sum(per_node.values())
    if total == expected:
        return None

    not_advertised = _("not advertised")
    names = sorted(_node_name(node) for node in nodes)
    listing = ", ".join(f"{name}={per_node.get(name, not_advertised)}" for name in names)

    return _(
        "expected {expected} {resource} allocatable in total on the workload cluster's nodes, found {found}; "
        "allocatable {resource} per node: {nodes}. Check that each GPU worker VM has its passthrough GPUs and "
        "that the GPU Operator's device plugin Pod runs on it."
    ).format(expected=expected, resource=GPU_RESOURCE, found=total, nodes=listing or _("no nodes"))


def scheduling_message(pod: Mapping[str, Any]) -> str | None:
    """Return the scheduler's message while the Pod is Pending with PodScheduled False (Unschedulable); else None."""
    status = pod.get("status") or {}
    if status.get("phase") != "Pending":
        return None

    for condition in status.get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            return str(condition.get("message") or condition.get("reason"))

    return None


def _container_status(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == CONTAINER_NAME:
            return status

    return {}


def waiting_reason(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    """Return the test container's waiting reason and message, such as ``ImagePullBackOff``; else None."""
    waiting = (_container_status(pod).get("state") or {}).get("waiting") or {}
    if not waiting.get("reason"):
        return None

    return str(waiting["reason"]), str(waiting.get("message") or "")


def _waiting_text(waiting: tuple[str, str]) -> str:
    reason, message = waiting

    return f"{reason}: {message}" if message else reason


def exit_code(pod: Mapping[str, Any]) -> int | None:
    """Return the test container's exit code once it has terminated; else None."""
    terminated = (_container_status(pod).get("state") or {}).get("terminated") or {}
    code = terminated.get("exitCode")

    return int(code) if code is not None else None


def log_tail(log: str, lines: int = LOG_TAIL_LINES) -> str:
    """Return the last ``lines`` non-empty lines of a container log."""
    non_empty = [line for line in log.splitlines() if line.strip()]

    return "\n".join(non_empty[-lines:])


def is_finished(pod: Mapping[str, Any]) -> bool:
    """Tell whether waiting longer cannot change the outcome: a terminal phase or a fatal container state."""
    if _phase(pod) in TERMINAL_PHASES:
        return True

    waiting = waiting_reason(pod)

    return waiting is not None and waiting[0] in FATAL_WAITING_REASONS


def unfinished_problem(pod: Mapping[str, Any], scheduling: str | None, timeout_seconds: float | None) -> str:
    """Describe a Pod that has not finished, with the last scheduling message or container waiting reason.

    ``timeout_seconds`` is the wait that ran out, or None when the Pod was observed once (on refresh).
    """
    phase = _phase(pod) or "Unknown"
    waiting = waiting_reason(pod)
    if scheduling:
        reason = _("not scheduled: {message}").format(message=scheduling)
    elif waiting is not None:
        reason = _("container {container} waiting: {state}").format(container=CONTAINER_NAME, state=_waiting_text(waiting))
    else:
        reason = _("no scheduling or container problem reported")

    if timeout_seconds is None:
        return _("Pod {pod} has not finished; it is in phase {phase}: {reason}").format(
            pod=_pod_name(pod), phase=phase, reason=reason
        )

    return _(
        "Pod {pod} did not finish within {timeout}s. Fix the cause below, or raise validation.timeout if the "
        "image pull is slow. It is in phase {phase}: {reason}"
    ).format(pod=_pod_name(pod), timeout=f"{timeout_seconds:g}", phase=phase, reason=reason)


def finished_problem(pod: Mapping[str, Any], log: str) -> str | None:
    """Describe a finished Pod that did not pass; else None.

    It passes only in phase Succeeded with "Test PASSED" in its log. A Pod whose container cannot start
    (such as ImagePullBackOff) is reported with the waiting reason, since it has no log.
    """
    phase = _phase(pod) or "Unknown"
    if phase == "Succeeded" and PASSED_MARKER in log:
        return None

    waiting = waiting_reason(pod)
    if phase not in TERMINAL_PHASES and waiting is not None:
        return _(
            "CUDA validation failed: the container {container} of Pod {pod} cannot start: {state}. Check that "
            "the image exists in the registry and that the nodes can pull it."
        ).format(container=CONTAINER_NAME, pod=_pod_name(pod), state=_waiting_text(waiting))

    code = exit_code(pod)

    return _(
        "CUDA validation failed: Pod {pod} ended in phase {phase} with exit code {code}, and its log does not "
        "show {marker}. Last {count} log lines:\n{tail}"
    ).format(
        pod=_pod_name(pod),
        phase=phase,
        code=code if code is not None else _("unknown"),
        marker=PASSED_MARKER,
        count=LOG_TAIL_LINES,
        tail=log_tail(log) or _("(empty log)"),
    )


# ---------------------------------------------------------------------------------------------------------
# Kubernetes API access

@contextlib.contextmanager
def api_client(kubeconfig: str) -> Iterator[kubernetes.client.ApiClient]:
    """Yield an API client of the workload cluster; kubeconfig problems raise GpuValidationError."""
    with kube_client.api_client(kubeconfig, cluster=_("the workload cluster"), error_type=GpuValidationError) as client:
        yield client


def _request_failed(request: str, server: str, error: Exception) -> GpuValidationError:
    """Turn a client exception into an error naming the request; the raw exception is not chained."""
    if isinstance(error, kubernetes.client.ApiException):
        detail = f"HTTP {error.status} {error.reason}"
    else:
        detail = f"{type(error).__name__}: {error}"

    return GpuValidationError(
        _("Kubernetes API request {request} to {server} failed: {detail}").format(
            request=request, server=server, detail=detail
        )
    )


class _Cluster:
    """Reads of one workload cluster, returning JSON dicts (camelCase keys) for the evaluation functions."""

    def __init__(self, client: kubernetes.client.ApiClient) -> None:
        self._client = client
        self._core = kubernetes.client.CoreV1Api(client)
        self.server = client.configuration.host

    def nodes(self) -> list[dict[str, Any]]:
        try:
            response = self._core.list_node(_request_timeout=REQUEST_TIMEOUT_SECONDS)
        except (kubernetes.client.ApiException, urllib3.exceptions.HTTPError) as error:
            raise _request_failed("list nodes", self.server, error) from None

        return [self._client.sanitize_for_serialization(node) for node in response.items]

    def pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        """Return the Pod, or None when it does not exist."""
        try:
            pod = self._core.read_namespaced_pod(name, namespace, _request_timeout=REQUEST_TIMEOUT_SECONDS)
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            raise _request_failed(f"get pod {namespace}/{name}", self.server, error) from None
        except urllib3.exceptions.HTTPError as error:
            raise _request_failed(f"get pod {namespace}/{name}", self.server, error) from None

        return self._client.sanitize_for_serialization(pod)

    def log(self, namespace: str, name: str) -> str:
        """Return the test container's log; a log the API server cannot serve (never started) is empty."""
        try:
            return self._core.read_namespaced_pod_log(
                name, namespace, container=CONTAINER_NAME, _request_timeout=REQUEST_TIMEOUT_SECONDS
            )
        except kubernetes.client.ApiException as error:
            if error.status in (400, 404):
                return ""
            raise _request_failed(f"get log of pod {namespace}/{name}", self.server, error) from None
        except urllib3.exceptions.HTTPError as error:
            raise _request_failed(f"get log of pod {namespace}/{name}", self.server, error) from None


# ---------------------------------------------------------------------------------------------------------
# Dynamic provider


def _pod_not_found(namespace: str, name: str) -> GpuValidationError:
    return GpuValidationError(
        _("Pod {pod} not found; run pulumi refresh and then pulumi up to recreate it").format(
            pod=f"{namespace}/{name}"
        )
    )


def validation_problems(
    pod: Mapping[str, Any],
    nodes: list[Mapping[str, Any]],
    log: str,
    expected_gpus: int,
    scheduling: str | None,
    timeout_seconds: float | None,
) -> list[str]:
    """List every reason the validation did not pass; an empty list means it passed.

    ``scheduling`` is the last Unschedulable message seen while waiting. ``timeout_seconds`` is the wait that
    ran out, or None for a single observation (refresh).
    """
    problems = [allocatable_problem(nodes, expected_gpus)]
    if is_finished(pod):
        problems.append(finished_problem(pod, log))
    else:
        problems.append(unfinished_problem(pod, scheduling or scheduling_message(pod), timeout_seconds))

    return [problem for problem in problems if problem]


def _wait_for_pod(
    cluster: _Cluster, namespace: str, name: str, expected_gpus: int, timeout_seconds: float
) -> tuple[dict[str, Any], list[dict[str, Any]], str | None]:
    """Poll until the Pod has finished and the GPU count matches, or the timeout; return Pod, nodes, scheduling message."""
    deadline = time.monotonic() + timeout_seconds
    scheduling = None
    while True:
        nodes = cluster.nodes()
        pod = cluster.pod(namespace, name)
        if pod is None:
            raise _pod_not_found(namespace, name)

        # The message disappears once the Pod is scheduled, so the last one seen is kept for the report.
        scheduling = scheduling_message(pod) or scheduling
        gpus_match = allocatable_problem(nodes, expected_gpus) is None
        # After a pass, waiting goes on while GPUs are missing: the device plugin may still be registering them.
        if is_finished(pod) and (gpus_match or _phase(pod) != "Succeeded"):
            return pod, nodes, scheduling
        if time.monotonic() >= deadline:
            return pod, nodes, scheduling

        time.sleep(POLL_INTERVAL_SECONDS)


class CudaValidationProvider(dynamic.ResourceProvider):
    """Wait for the CUDA test Pod and check its log and the cluster's allocatable GPUs.

    Inputs: ``namespace``, ``pod_name``, ``pod_uid`` (a new Pod replaces the resource and runs the check
    again), ``expected_gpus``, ``timeout_seconds``, ``kubeconfig`` (secret) and ``provider_version``.
    Outputs: ``result`` ("Test PASSED", or after a refresh the failure found), ``node``, ``allocatable_gpus``
    and ``log_tail``.
    """

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        namespace, name = props["namespace"], props["pod_name"]
        expected = int(props["expected_gpus"])
        timeout = float(props["timeout_seconds"])

        with api_client(props["kubeconfig"]) as client:
            cluster = _Cluster(client)
            pod, nodes, scheduling = _wait_for_pod(cluster, namespace, name, expected, timeout)
            log = cluster.log(namespace, name) if _phase(pod) in TERMINAL_PHASES else ""

        problems = validation_problems(pod, nodes, log, expected, scheduling, timeout)
        if problems:
            if is_finished(pod) and finished_problem(pod, log) is not None:
                # With restartPolicy Never the Pod keeps its final state, so another `pulumi up` reads it again.
                problems.append(
                    _("The Pod does not run again by itself: after fixing the cause, run pulumi up --replace with "
                      "the Pod's URN (pulumi stack --show-urns lists it).")
                )
            raise GpuValidationError("\n".join(problems))

        return dynamic.CreateResult(f"{namespace}/{name}", {**props, **_outputs(pod, nodes, log, PASSED_MARKER)})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        """Replace (run the check again) on a new Pod, a new expected count, or a failure found by refresh."""
        replaces = [key for key in ("namespace", "pod_name", "pod_uid", "expected_gpus") if olds.get(key) != news.get(key)]
        if olds.get("result") != PASSED_MARKER:
            replaces.append("result")

        changed = bool(replaces) or any(
            olds.get(key) != news.get(key) for key in ("kubeconfig", "timeout_seconds", "provider_version")
        )

        return dynamic.DiffResult(changes=changed, replaces=replaces or None)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        """Store new connection settings or timeout; the check ran already for this Pod."""
        return dynamic.UpdateResult({**news, **{key: olds.get(key) for key in _OUTPUT_KEYS}})

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        """Check the Pod, its log and the allocatable GPUs once; a missing or recreated Pod deletes the resource."""
        namespace, name = props["namespace"], props["pod_name"]
        with api_client(props["kubeconfig"]) as client:
            cluster = _Cluster(client)
            pod = cluster.pod(namespace, name)
            recreated = pod is not None and props.get("pod_uid") and (pod.get("metadata") or {}).get("uid") != props["pod_uid"]
            if pod is None or recreated:
                return dynamic.ReadResult("", {})

            nodes = cluster.nodes()
            log = cluster.log(namespace, name) if _phase(pod) in TERMINAL_PHASES else ""

        problems = validation_problems(pod, nodes, log, int(props["expected_gpus"]), None, None)
        result = "\n".join(problems) if problems else PASSED_MARKER
        inputs = {key: value for key, value in props.items() if key not in _OUTPUT_KEYS and key != "__provider"}

        return dynamic.ReadResult(id_, {**props, **_outputs(pod, nodes, log, result)}, inputs)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Remove nothing: the Pod is a separate resource of the stack."""


def _outputs(pod: Mapping[str, Any], nodes: list[Mapping[str, Any]], log: str, result: str) -> dict[str, Any]:
    return {
        "result": result,
        "node": (pod.get("spec") or {}).get("nodeName") or "",
        "allocatable_gpus": sum(gpu_allocatable(nodes).values()),
        "log_tail": log_tail(log),
    }


class CudaValidation(dynamic.Resource, module="tkggpu", name="CudaValidation"):
    """The outcome of the CUDA test Pod; its ID is ``<namespace>/<pod name>``."""

    result: pulumi.Output[str]
    node: pulumi.Output[str]
    allocatable_gpus: pulumi.Output[int]
    log_tail: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        namespace: pulumi.Input[str],
        pod_name: pulumi.Input[str],
        pod_uid: pulumi.Input[str],
        expected_gpus: pulumi.Input[int],
        timeout_seconds: float,
        kubeconfig: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "namespace": namespace,
            "pod_name": pod_name,
            "pod_uid": pod_uid,
            "expected_gpus": expected_gpus,
            "timeout_seconds": timeout_seconds,
            "kubeconfig": pulumi.Output.secret(kubeconfig),
            "provider_version": PROVIDER_VERSION,
            **{key: None for key in _OUTPUT_KEYS},
        }
        secret_outputs = pulumi.ResourceOptions(additional_secret_outputs=["kubeconfig"])
        super().__init__(
            CudaValidationProvider(), resource_name, props, pulumi.ResourceOptions.merge(secret_outputs, opts)
        )


# ---------------------------------------------------------------------------------------------------------
# Component


def validation_pod(
    resource_name: str,
    *,
    settings: ValidationSettings,
    registry: RegistrySettings | None,
    namespace: pulumi.Input[str],
    opts: pulumi.ResourceOptions | None = None,
) -> k8s.core.v1.Pod:
    """Declare the cuda-vector-add Pod: one container limited to one GPU, never restarted, not awaited by the provider.

    Pulumi names the Pod ``<resource name>-<random suffix>``, so a replacement Pod is created next to the old one.
    The provider does not wait for the deletion of a Pod it does not await, so with a fixed name the new Pod's
    apply would collide with the terminating old one.
    """
    return k8s.core.v1.Pod(
        resource_name,
        metadata=k8s.meta.v1.ObjectMetaArgs(
            namespace=namespace,
            labels={NAME_LABEL: POD_NAME, PART_OF_LABEL: PART_OF},
            # CudaValidation waits for the result, with its own timeout and error messages.
            annotations={"pulumi.com/skipAwait": "true"},
        ),
        spec=k8s.core.v1.PodSpecArgs(
            restart_policy="Never",
            containers=[
                k8s.core.v1.ContainerArgs(
                    name=CONTAINER_NAME,
                    image=validation_image(settings.image, registry),
                    resources=k8s.core.v1.ResourceRequirementsArgs(limits={GPU_RESOURCE: "1"}),
                )
            ],
            tolerations=[k8s.core.v1.TolerationArgs(key=GPU_RESOURCE, operator="Exists", effect="NoSchedule")],
        ),
        opts=opts,
    )


class GpuValidation(pulumi.ComponentResource):
    """The validation namespace, the ``cuda-vector-add`` Pod and the ``CudaValidation`` that waits for it."""

    result: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        settings: ValidationSettings,
        registry: RegistrySettings | None,
        expected_gpus: pulumi.Input[int],
        kubeconfig: pulumi.Input[str],
        provider: k8s.Provider,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """``expected_gpus`` is the total nvidia.com/gpu the GPU workers advertise: worker count × GPUs per worker."""
        super().__init__("tkg-gpu:index:GpuValidation", name, None, opts)

        if not settings.enabled:
            self.result = pulumi.Output.from_input(_("skipped: validation.enabled is false"))
            self.register_outputs({"result": self.result})
            return

        kubernetes_opts = pulumi.ResourceOptions(parent=self, provider=provider)

        self.namespace = k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=settings.namespace,
                # The test Pod runs as the image's user (root), which the baseline Pod Security level allows
                # also on clusters whose default level is restricted.
                labels={PART_OF_LABEL: PART_OF, "pod-security.kubernetes.io/enforce": "baseline"},
            ),
            opts=kubernetes_opts,
        )

        self.pod = validation_pod(
            f"{name}-{POD_NAME}", settings=settings, registry=registry, namespace=self.namespace.metadata.name, opts=kubernetes_opts
        )

        self.validation = CudaValidation(
            f"{name}-check",
            namespace=self.pod.metadata.namespace,
            pod_name=self.pod.metadata.name,
            pod_uid=self.pod.metadata.uid,
            expected_gpus=expected_gpus,
            timeout_seconds=duration_seconds(settings.timeout),
            kubeconfig=kubeconfig,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.pod]),
        )

        self.result = self.validation.result
        self.register_outputs({"result": self.result})
