"""NVIDIA driver version and kernel module type for the GPU Operator, chosen from the site's GPU generations.

Pure functions over the settings and the generation names of ``components.gpu_catalog``, so that unit tests
can check every choice without Pulumi.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable

from components import gpu_catalog
from components.config import ConfigError, GpuOperatorSettings
from components.i18n import _

# Default ``driver.version`` of each gpu-operator chart line, read from deployments/gpu-operator/values.yaml
# at the first tag of the line in the NVIDIA/gpu-operator repository (v24.9.2, v25.3.0, v25.10.0, v26.3.0,
# v26.7.0). A later patch release of a line may ship a newer build of the same branch.
CHART_DEFAULT_DRIVERS = {
    (24, 9): "550.144.03",
    (25, 3): "570.124.06",
    (25, 10): "580.95.05",
    (26, 3): "580.126.20",
    (26, 7): "595.91.07",
}

# R580 is the last driver branch that supports Volta (NVIDIA/ansible-role-nvidia-driver pull request 89),
# and Volta has no support in NVIDIA's open kernel modules, which start at Turing
# (NVIDIA/open-gpu-kernel-modules README).
VOLTA = "Volta"
LAST_VOLTA_BRANCH = 580
VOLTA_DRIVER = "580.126.20"
"""R580 build pinned for Volta when the chart line's default driver is of a later branch."""

OPEN_MODULE_GENERATIONS = frozenset({"Turing", "Ampere", "Ada Lovelace", "Hopper", "Blackwell"})

_CHART_LINE = re.compile(r"^v?(\d+)\.(\d+)\.")


@dataclasses.dataclass(frozen=True)
class DriverChoice:
    """Values of the chart's ``driver`` section that tkg-gpu sets."""

    enabled: bool
    version: str | None
    """``driver.version``; None only when the driver is disabled and no version is known for the chart."""
    kernel_module_type: str
    """``driver.kernelModuleType``: ``open``, ``proprietary`` or ``auto``."""


def site_generations(worker_pairs: Iterable[tuple[int, int]]) -> frozenset[str | None]:
    """Return the GPU generation of each worker GPU pair; None stands for a device missing from the catalogue."""
    generations = set()
    for pair in worker_pairs:
        model = gpu_catalog.model_for_device(*pair)
        generations.add(model.generation if model is not None else None)

    return frozenset(generations)


def driver_branch(version: str) -> int:
    """Return the branch of a driver version, such as 580 for ``580.126.20``."""
    return int(version.split(".", 1)[0])


def chart_default_driver(chart_version: str) -> str | None:
    """Return the default driver of the chart's line (major.minor), or None for a line missing from the table."""
    match = _CHART_LINE.match(chart_version)
    if match is None:
        return None

    return CHART_DEFAULT_DRIVERS.get((int(match.group(1)), int(match.group(2))))


def default_kernel_module_type(generations: Iterable[str | None]) -> str:
    """Choose the kernel module type for a set of GPU generations.

    Volta anywhere on the site needs the proprietary module, also next to newer GPUs, because one
    ClusterPolicy sets the module for every node. Known Turing-or-newer GPUs get the open module. A device
    missing from the catalogue gets ``auto``, which lets the driver container decide on the node.
    """
    present = set(generations)
    if VOLTA in present:
        return "proprietary"

    if present and present <= OPEN_MODULE_GENERATIONS:
        return "open"

    return "auto"


def choose_driver(settings: GpuOperatorSettings, generations: Iterable[str | None]) -> DriverChoice:
    """Choose ``driver.version`` and ``driver.kernelModuleType`` for the site, honouring explicit settings.

    Raises ConfigError when the settings cannot drive the site's GPUs (a driver branch after R580 or the
    open kernel module with Volta GPUs), or when no default driver is known for the chart version.
    """
    present = frozenset(generations)
    has_volta = VOLTA in present

    kernel_module_type = settings.kernel_module_type or default_kernel_module_type(present)
    if has_volta and kernel_module_type == "open":
        raise ConfigError(
            _("tkg-gpu:gpuOperator.kernelModuleType: open does not support the site's Volta GPUs; set proprietary or remove the setting")
        )

    version = settings.driver_version or _default_version(settings.version, has_volta)
    if version is None and settings.driver_enabled:
        raise ConfigError(
            _("tkg-gpu:gpuOperator.driverVersion: no default driver is known for chart version {version}; set gpuOperator.driverVersion to a driver version that the chart supports (the chart's values.yaml lists its default as driver.version)").format(
                version=settings.version
            )
        )

    if has_volta and version is not None and driver_branch(version) > LAST_VOLTA_BRANCH:
        raise ConfigError(
            _("tkg-gpu:gpuOperator.driverVersion: driver {version} does not support the site's Volta GPUs, whose last driver branch is R{branch}; set gpuOperator.driverVersion to an R{branch} build such as {example}").format(
                version=version, branch=LAST_VOLTA_BRANCH, example=VOLTA_DRIVER
            )
        )

    return DriverChoice(enabled=settings.driver_enabled, version=version, kernel_module_type=kernel_module_type)


def _default_version(chart_version: str, has_volta: bool) -> str | None:
    default = chart_default_driver(chart_version)
    if has_volta and default is not None and driver_branch(default) > LAST_VOLTA_BRANCH:
        return VOLTA_DRIVER

    return default
