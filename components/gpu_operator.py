"""GpuOperator: the NVIDIA GPU Operator Helm release and its namespace on the workload cluster.

``chart_source`` and ``render_values`` are pure functions, so that unit tests can check the chart reference
and the values without a cluster.
"""

from __future__ import annotations

import copy
import dataclasses
import pathlib
import re
from collections.abc import Iterable, Mapping
from typing import Any

import pulumi
import pulumi_kubernetes as kubernetes

from components import gpu_driver
from components import site as site_module
from components.config import ConfigError, GpuOperatorSettings, SiteConfig, duration_seconds
from components.i18n import _

RESOURCE_TYPE = "tkg-gpu:index:GpuOperator"
CHART_NAME = "gpu-operator"

PSA_MODES = ("enforce", "audit", "warn")
PSA_LABEL_PREFIX = "pod-security.kubernetes.io/"

# Sections of the gpu-operator chart values whose ``repository`` key sets where an operand image comes from,
# read from deployments/gpu-operator/values.yaml of the chart line whose default driver is 580.126.20. The
# image name stays the chart's own (``image`` key), so the registry must serve each image as <registry>/<image>.
# Sections that an older chart lacks, such as kataSandboxDevicePlugin before v26.3, are ignored by Helm.
# operator.initContainer names the cuda image of the init containers that the operator adds to its operands.
# The chart's values have it at least up to the v25 line, and a site may pin such a chart.
OPERAND_SECTIONS: tuple[tuple[str, ...], ...] = (
    ("operator",),
    ("operator", "initContainer"),
    ("validator",),
    ("driver",),
    ("driver", "manager"),
    ("toolkit",),
    ("devicePlugin",),
    ("dcgm",),
    ("dcgmExporter",),
    ("gfd",),
    ("migManager",),
    ("nodeStatusExporter",),
    ("gds",),
    ("gdrcopy",),
    ("vgpuManager",),
    ("vgpuManager", "driverManager"),
    ("vgpuDeviceManager",),
    ("vfioManager",),
    ("vfioManager", "driverManager"),
    ("kataManager",),
    ("sandboxDevicePlugin",),
    ("kataSandboxDevicePlugin",),
    ("ccManager",),
)
# The Node Feature Discovery subchart names its image as one full reference in ``image.repository``.
NFD_SECTION = "node-feature-discovery"
NFD_IMAGE = "node-feature-discovery"

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class ChartLocation:
    """Chart reference of the Release, with its Helm repository when it has one."""

    chart: str
    """``chart`` input of the Release: the chart name, an ``oci://`` reference or an absolute path."""
    repository: str | None = None
    """``repositoryOpts.repo``, set only for a chart from an HTTP Helm repository."""
    replaced: str | None = None
    """An explicitly configured chart source outside the site registry that this location replaces."""


def chart_source(settings: GpuOperatorSettings, registry: str | None, project_dir: pathlib.Path) -> ChartLocation:
    """Choose the chart reference of the Release from ``gpuOperator.chart`` and the site registry.

    A ``path`` is resolved against the project directory and always wins. With a site registry, a source
    outside it becomes ``oci://<registry>/gpu-operator``, because an air-gapped site reaches nothing else.
    """
    source = settings.chart
    if source.path is not None:
        return ChartLocation(chart=str((project_dir / source.path).resolve()))

    configured = source.oci or source.repository
    assert configured is not None, "ChartSource validates that one source is set"

    if registry and not in_registry(configured, registry):
        explicit = "chart" in settings.model_fields_set

        return ChartLocation(chart=f"oci://{registry}/{CHART_NAME}", replaced=configured if explicit else None)

    if source.oci is not None:
        return ChartLocation(chart=source.oci)

    return ChartLocation(chart=CHART_NAME, repository=source.repository)


def in_registry(reference: str, registry: str) -> bool:
    """Tell whether a chart or repository reference lies under ``registry`` (``host[:port]/project``).

    The scheme is ignored and the host is compared without case, as the air-gapped-registry policy does.
    """
    target = _SCHEME.sub("", reference.strip()).rstrip("/")
    prefix = registry.rstrip("/")
    target_host, _slash, target_path = target.partition("/")
    prefix_host, _slash, prefix_path = prefix.partition("/")
    if target_host.lower() != prefix_host.lower():
        return False

    return not prefix_path or target_path == prefix_path or target_path.startswith(prefix_path + "/")


def registry_values(registry: str) -> dict[str, Any]:
    """Return chart values that point every operand image, and Node Feature Discovery's, at ``registry``."""
    values: dict[str, Any] = {}
    for section in OPERAND_SECTIONS:
        node = values
        for key in section:
            node = node.setdefault(key, {})
        node["repository"] = registry

    values[NFD_SECTION] = {"image": {"repository": f"{registry}/{NFD_IMAGE}"}}

    return values


def render_values(
    settings: GpuOperatorSettings,
    driver: gpu_driver.DriverChoice,
    *,
    registry: str | None,
    pod_security: bool,
) -> dict[str, Any]:
    """Render the Release values: driver choice, Pod Security admission, registry rewrites, then ``gpuOperator.values``.

    ``pod_security`` is true when the site enforces a Pod Security Standard, so that the chart's
    ``psa.enabled`` matches the privileged labels of the namespace. The operator's own ``gpuOperator.values``
    are merged last and win over every value set here.
    """
    driver_values: dict[str, Any] = {"enabled": driver.enabled, "kernelModuleType": driver.kernel_module_type}
    if driver.version is not None:
        driver_values["version"] = driver.version

    values: dict[str, Any] = {"driver": driver_values, "psa": {"enabled": pod_security}}
    if registry:
        values = deep_merge(values, registry_values(registry))

    return deep_merge(values, settings.values)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``base`` with ``override`` merged in: mappings merge key by key, other values replace."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)

    return merged


def namespace_labels(pod_security: bool) -> dict[str, str]:
    """Return the namespace labels; privileged Pod Security admission for every mode when the site enforces PSS."""
    if not pod_security:
        return {}

    return {f"{PSA_LABEL_PREFIX}{mode}": "privileged" for mode in PSA_MODES}


class GpuOperator(pulumi.ComponentResource):
    """The GPU Operator on a workload cluster: its namespace and a Helm release with a fixed name and version.

    Declare it only when ``gpuOperator.enabled`` is true. ``generations`` are the GPU generations of the
    worker VMs (``gpu_driver.site_generations``), which choose the driver version and kernel module.
    """

    release_name: pulumi.Output[str]
    namespace: pulumi.Output[str]
    status: pulumi.Output[str]
    chart_version: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        *,
        site: SiteConfig,
        generations: Iterable[str | None],
        provider: kubernetes.Provider,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(RESOURCE_TYPE, name, None, opts)

        settings = site.gpu_operator
        registry = site.registry.repository if site.registry else None
        pod_security = site.cluster.pod_security_standard_enforce is not None
        driver = gpu_driver.choose_driver(settings, generations)
        location = chart_source(settings, registry, site_module.project_directory())
        _check_chart_path(settings, location)
        if location.replaced is not None:
            pulumi.log.warn(
                _("tkg-gpu:gpuOperator.chart: {source} is outside the site registry {registry}, so tkg-gpu installs {chart} instead; mirror the chart there, or set gpuOperator.chart to a source in the registry").format(
                    source=location.replaced, registry=registry, chart=location.chart
                ),
                resource=self,
            )

        child = pulumi.ResourceOptions(parent=self, provider=provider)
        self.namespace_resource = kubernetes.core.v1.Namespace(
            f"{name}-namespace",
            metadata=kubernetes.meta.v1.ObjectMetaArgs(name=settings.namespace, labels=namespace_labels(pod_security)),
            opts=child,
        )
        self.release = kubernetes.helm.v3.Release(
            f"{name}-release",
            name=settings.release_name,
            chart=location.chart,
            repository_opts=(
                kubernetes.helm.v3.RepositoryOptsArgs(repo=location.repository) if location.repository else None
            ),
            version=settings.version,
            namespace=self.namespace_resource.metadata.name,
            create_namespace=False,
            values=render_values(settings, driver, registry=registry, pod_security=pod_security),
            timeout=int(duration_seconds(settings.timeout)),
            # A failed install or upgrade is rolled back (atomic) and the resources it created are removed
            # (cleanup_on_fail), so the cluster keeps the last working operator and the next update retries cleanly.
            atomic=True,
            cleanup_on_fail=True,
            opts=child,
        )

        self.release_name = self.release.name
        self.namespace = self.namespace_resource.metadata.name
        self.status = self.release.status.apply(lambda status: status.status if status else None)
        self.chart_version = self.release.status.apply(lambda status: status.version if status else None)
        self.register_outputs(
            {
                "release_name": self.release_name,
                "namespace": self.namespace,
                "status": self.status,
                "chart_version": self.chart_version,
            }
        )


def _check_chart_path(settings: GpuOperatorSettings, location: ChartLocation) -> None:
    if settings.chart.path is None or pathlib.Path(location.chart).exists():
        return

    raise ConfigError(
        _("tkg-gpu:gpuOperator.chart.path: {path} not found (resolved against the project directory); set it to a chart directory or .tgz archive").format(
            path=location.chart
        )
    )
