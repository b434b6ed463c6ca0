"""Policy rules as pure functions over resource inputs.

Each rule returns a list of violation messages, empty when compliant. The rules can therefore be
unit-tested without the policy runtime, and ``pack.py`` binds them to resource types. Most rules read the
inputs of the ``ClusterConfig`` resource. The rules for ``kubernetes:helm.sh/v3:Release`` and
``kubernetes:core/v1:Pod`` check the GPU Operator release and the CUDA validation Pod. A Release arrives
after the Kubernetes provider's Check, with ``version`` replaced by the loaded chart's version and an unset
``name`` filled in (see ``gpu_operator_chart_pinned``).

The policy runtime passes every number as a float (protobuf ``Struct``) and every mapping and list as a
read-only proxy, so the rules accept any ``Mapping`` or ``Sequence`` and compare numbers by value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from components import gpu_catalog
from components.cluster_config import RESOURCE_TYPE
from components.config import duration_seconds
from components.i18n import _

CLUSTER_CONFIG_TYPE = RESOURCE_TYPE
HELM_RELEASE_TYPE = "kubernetes:helm.sh/v3:Release"
POD_TYPE = "kubernetes:core/v1:Pod"

# Dynamic DirectPath I/O, which TKG uses for GPU workers, needs hardware version 17 (ESXi 7.0) or later.
MIN_PASSTHROUGH_HARDWARE_VERSION = 17

# MachineHealthCheck timeouts an edge stack must set itself, with the stack setting that renders each one.
EDGE_REQUIRED_TIMEOUTS = {
    "NODE_STARTUP_TIMEOUT": "tkg-gpu:edge.nodeStartupTimeout",
    "MHC_FALSE_STATUS_TIMEOUT": "tkg-gpu:edge.mhcFalseStatusTimeout",
}

GPU_OPERATOR_CHART = "gpu-operator"
GPU_RESOURCE = "nvidia.com/gpu"
PART_OF_LABEL = "app.kubernetes.io/part-of"
VALIDATION_PART_OF = "tkg-gpu-validation"

_HARDWARE_VERSION = re.compile(r"^vmx-(\d+)$")
# An exact SemVer 2.0 version, with the leading "v" that GPU Operator chart tags carry.
_EXACT_VERSION = re.compile(
    r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$"
)
# Helm release names are DNS labels of at most 53 characters.
_RELEASE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,51}[a-z0-9])?$")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)


# ---------------------------------------------------------------------------------------------------------
# Helpers


def _worker(props: Mapping[str, Any]) -> Mapping[str, Any]:
    return props.get("worker") or {}


def _variables(props: Mapping[str, Any]) -> Mapping[str, Any]:
    return props.get("variables") or {}


def _site(props: Mapping[str, Any]) -> Mapping[str, Any]:
    return props.get("site") or {}


def _pci_pairs(props: Mapping[str, Any]) -> list[str]:
    return [str(item) for item in _worker(props).get("pci_devices_hex") or []]


def _whole_number(value: Any) -> int | None:
    """Return an integer input as int, also when the policy runtime delivers it as a float; else None."""
    if isinstance(value, bool):
        return None

    if isinstance(value, int):
        return value

    if isinstance(value, float) and value.is_integer():
        return int(value)

    return None


def _number_or_value(value: Any) -> Any:
    """Undo the runtime's float conversion of a whole number, so that a message shows 40 and not 40.0."""
    number = _whole_number(value)

    return number if number is not None else value


def _integer(value: Any) -> int | None:
    """Return a whole number given as a number or as decimal digits (a VMX value, a quantity ``"2"``); else None."""
    number = _whole_number(value)
    if number is not None:
        return number

    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())

    return None


def _hardware_version_number(value: Any) -> int | None:
    match = _HARDWARE_VERSION.match(str(value)) if value is not None else None

    return int(match.group(1)) if match else None


def _is_go_duration(value: Any) -> bool:
    """Tell whether a value is a Go duration string with units, such as ``40m``; a bare number is not."""
    if not isinstance(value, str):
        return False

    try:
        duration_seconds(value)
    except ValueError:
        return False

    return True


def _shown(value: Any) -> str:
    """Format an input for a message: booleans as YAML writes them, a missing value as "not set"."""
    if value is None or value == "":
        return _("not set")

    if isinstance(value, bool):
        return "true" if value else "false"

    return str(value)


def _is_power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def _esxi_version_key(version: str) -> tuple[int, ...]:
    """Sort key of an ESXi version such as ``8.0.2``; text that is not numeric sorts first."""
    parts = []
    for part in str(version).split("."):
        if not part.isdigit():
            return ()
        parts.append(int(part))

    return tuple(parts)


# ---------------------------------------------------------------------------------------------------------
# ClusterConfig: GPU passthrough on the worker VMs


def one_gpu_type_per_vm(props: Mapping[str, Any]) -> list[str]:
    """A worker VM must carry one vendor:device pair only: the driver and TKG assume identical GPUs."""
    pairs = _pci_pairs(props)
    distinct = sorted(set(pairs))
    if len(distinct) <= 1:
        return []

    return [
        _("Cluster {cluster}: VSPHERE_WORKER_PCI_DEVICES mixes {count} GPU types in one worker VM ({pairs}). Use one vendor:device pair per VM, and a separate node pool for each GPU type.").format(
            cluster=props.get("cluster_name"), count=len(distinct), pairs=", ".join(distinct)
        )
    ]


def hardware_version_for_pci(props: Mapping[str, Any]) -> list[str]:
    """Wherever PCI devices are set, the hardware version must be set explicitly and be vmx-17 or later."""
    if not _pci_pairs(props):
        return []

    cluster = props.get("cluster_name")
    version = _variables(props).get("VSPHERE_WORKER_HARDWARE_VERSION")
    if not version:
        return [
            _("Cluster {cluster}: VSPHERE_WORKER_PCI_DEVICES is set but VSPHERE_WORKER_HARDWARE_VERSION is not; class-based clusters then default to vmx-15, which cannot take the GPUs. Set tkg-gpu:cluster.hardwareVersion to vmx-17 or later.").format(
                cluster=cluster
            )
        ]

    number = _hardware_version_number(version)
    if number is None or number < MIN_PASSTHROUGH_HARDWARE_VERSION:
        return [
            _("Cluster {cluster}: VSPHERE_WORKER_HARDWARE_VERSION is {version}, but GPU passthrough (Dynamic DirectPath I/O) needs vmx-17 or later. Set tkg-gpu:cluster.hardwareVersion to vmx-17 or later.").format(
                cluster=cluster, version=version
            )
        ]

    return []


def hardware_version_supported_by_hosts(props: Mapping[str, Any]) -> list[str]:
    """Report a worker hardware version above the highest one that the site's oldest ESXi host runs.

    Hosts whose ESXi release is missing from the program's table (a limit of None) are not checked.
    """
    version = _variables(props).get("VSPHERE_WORKER_HARDWARE_VERSION")
    number = _hardware_version_number(version)
    if number is None:
        return []

    site = _site(props)
    esxi_versions = site.get("esxi_versions") or {}
    limits = {}
    for host, value in (site.get("host_max_hardware_versions") or {}).items():
        limit = _whole_number(value)
        if limit is not None:
            limits[host] = limit

    too_old = [host for host, limit in limits.items() if limit < number]
    if not too_old:
        return []

    oldest = min(too_old, key=lambda host: (limits[host], _esxi_version_key(esxi_versions.get(host, "")), host))

    return [
        _("Cluster {cluster}: VSPHERE_WORKER_HARDWARE_VERSION is {version}, but the oldest ESXi host, {host} (ESXi {esxi}), runs VMs up to vmx-{limit}, so the worker VMs could not run there ({count} of {total} hosts are too old). Set tkg-gpu:cluster.hardwareVersion to vmx-{limit} or lower (and vmx-17 or later for GPU passthrough), or upgrade the hosts.").format(
            cluster=props.get("cluster_name"),
            version=version,
            host=oldest,
            esxi=esxi_versions.get(oldest, "?"),
            limit=limits[oldest],
            count=len(too_old),
            total=len(limits),
        )
    ]


def mmio_64bit_sized(props: Mapping[str, Any]) -> list[str]:
    """Report large-BAR GPUs without pciPassthru.use64bitMMIO=TRUE or without a big enough power-of-two window."""
    worker = _worker(props)
    if not worker.get("needs_64bit_mmio"):
        return []

    cluster = props.get("cluster_name")
    pairs = ", ".join(sorted(set(_pci_pairs(props))))
    keys = worker.get("custom_vmx_keys") or {}
    required = _whole_number(worker.get("required_mmio_size_gb"))
    violations = []

    enabled = keys.get("pciPassthru.use64bitMMIO")
    if str(enabled).upper() != "TRUE":
        violations.append(
            _("Cluster {cluster}: the worker GPUs ({pairs}) need a 64-bit MMIO window, but pciPassthru.use64bitMMIO in VSPHERE_WORKER_CUSTOM_VMX_KEYS is {value} instead of TRUE, so the worker VMs would not power on. tkg-gpu renders this key from tkg-gpu:gpu: select the GPU with gpu.model, or set gpu.memoryGb for a GPU missing from the catalogue, and do not edit the VMX keys outside tkg-gpu.").format(
                cluster=cluster, pairs=pairs, value=_shown(enabled)
            )
        )

    size_text = keys.get("pciPassthru.64bitMMIOSizeGB")
    size = _integer(size_text)
    minimum = required if required is not None else 1
    if size is None or not _is_power_of_two(size) or size < minimum:
        accepted = (
            _("a power of two of at least {required} GB").format(required=required)
            if required is not None
            else _("a power of two in GB")
        )
        violations.append(
            _("Cluster {cluster}: pciPassthru.64bitMMIOSizeGB is {value}, but the worker GPUs ({pairs}) need {accepted}, or the worker VMs stop at power-on. Set tkg-gpu:cluster.mmioSizeGb to {accepted}, or remove it so that tkg-gpu computes the size.").format(
                cluster=cluster, value=_shown(size_text), pairs=pairs, accepted=accepted
            )
        )

    return violations


def pci_allow_list_flag(props: Mapping[str, Any]) -> list[str]:
    """Report a GPU other than the T4 unless VSPHERE_IGNORE_PCI_DEVICES_ALLOW_LIST is the boolean true."""
    outside = []
    for pair in sorted(set(_pci_pairs(props))):
        try:
            allowed = gpu_catalog.is_tkg_allow_listed(*gpu_catalog.parse_pci_pair(pair))
        except ValueError:
            allowed = False
        if not allowed:
            outside.append(pair)

    if not outside:
        return []

    cluster = props.get("cluster_name")
    flag = _variables(props).get("VSPHERE_IGNORE_PCI_DEVICES_ALLOW_LIST")
    if flag is True:
        return []

    if isinstance(flag, str):
        return [
            _("Cluster {cluster}: VSPHERE_IGNORE_PCI_DEVICES_ALLOW_LIST is the quoted string {value!r}, not a YAML boolean. TKG needs the boolean true for GPUs outside its PCI allow-list ({pairs}), where only the T4, 0x10DE:0x1EB8, is listed. Let tkg-gpu render the flag as an unquoted true: remove any override of it.").format(
                cluster=cluster, value=flag, pairs=", ".join(outside)
            )
        ]

    return [
        _("Cluster {cluster}: VSPHERE_IGNORE_PCI_DEVICES_ALLOW_LIST is {value}, but the worker GPUs ({pairs}) are outside TKG's PCI allow-list, where only the T4, 0x10DE:0x1EB8, is listed, so TKG stops rendering the cluster. The flag must be the boolean true: select the GPUs with tkg-gpu:gpu (model, vendorDevice or workerDevices) so that tkg-gpu sets it.").format(
            cluster=cluster, value=_shown(flag), pairs=", ".join(outside)
        )
    ]


# ---------------------------------------------------------------------------------------------------------
# ClusterConfig: worker template, rollout and edge timeouts


def gpu_template_efi(props: Mapping[str, Any]) -> list[str]:
    """Report a GPU worker template that boots with BIOS firmware or is not a VM template."""
    if not _pci_pairs(props):
        return []

    template = _site(props).get("template") or {}
    if not template:
        return []

    cluster = props.get("cluster_name")
    path = template.get("path")
    violations = []
    firmware = str(template.get("firmware") or "")
    if firmware.lower() != "efi":
        violations.append(
            _("Cluster {cluster}: the worker template {path} boots with {firmware} firmware, but passthrough GPUs need EFI. Set tkg-gpu:vcenter.template to a template built with EFI firmware (for example an Ubuntu EFI image, vmx-17 or later).").format(
                cluster=cluster, path=path, firmware=firmware or _("unknown")
            )
        )

    if not template.get("is_template"):
        violations.append(
            _("Cluster {cluster}: {path} is a virtual machine, not a VM template; TKG clones workers from templates. Convert it to a template in vCenter, or set tkg-gpu:vcenter.template to a template.").format(
                cluster=cluster, path=path
            )
        )

    return violations


def gpu_template_secure_boot(props: Mapping[str, Any]) -> list[str]:
    """Report UEFI Secure Boot on the GPU worker template, which makes the kernel reject unsigned driver modules."""
    if not _pci_pairs(props):
        return []

    template = _site(props).get("template") or {}
    if not template.get("secure_boot"):
        return []

    return [
        _("Cluster {cluster}: the worker template {path} has UEFI Secure Boot enabled, so the kernel will reject NVIDIA driver modules that the GPU Operator builds on the node. Disable Secure Boot in the template and set tkg-gpu:vcenter.template to it, unless the image carries signed, pre-installed drivers (GPU Operator driver.enabled: false).").format(
            cluster=props.get("cluster_name"), path=template.get("path")
        )
    ]


def gpu_rollout_no_surge(props: Mapping[str, Any]) -> list[str]:
    """Report RollingUpdate at a site without a spare GPU set for the surge VM, where only OnDelete works.

    An unset WORKER_ROLLOUT_STRATEGY counts as RollingUpdate, which is TKG's default.
    """
    strategy = _variables(props).get("WORKER_ROLLOUT_STRATEGY")
    effective = strategy or "RollingUpdate"
    spare = _whole_number(props.get("spare_worker_slots"))
    cluster = props.get("cluster_name")

    if effective == "OnDelete":
        return []

    if effective != "RollingUpdate":
        return [
            _("Cluster {cluster}: WORKER_ROLLOUT_STRATEGY is {value}; accepted values are RollingUpdate and OnDelete. Set tkg-gpu:cluster.rolloutStrategy to OnDelete, or remove it so that tkg-gpu chooses.").format(
                cluster=cluster, value=strategy
            )
        ]

    if spare is not None and spare >= 1:
        return []

    return [
        _("Cluster {cluster}: WORKER_ROLLOUT_STRATEGY is {value}, but the site has {spare} spare GPU sets, so the surge worker VM of a rollout would wait forever for a free GPU. RollingUpdate needs at least 1 spare GPU set. Set tkg-gpu:cluster.rolloutStrategy to OnDelete (or remove it so that tkg-gpu chooses), or lower tkg-gpu:cluster.workerCount.").format(
            cluster=cluster,
            value=strategy or _("unset (TKG default RollingUpdate)"),
            spare=spare if spare is not None else _("an unknown number of"),
        )
    ]


def edge_timeouts_explicit(props: Mapping[str, Any]) -> list[str]:
    """Report an edge stack that leaves NODE_STARTUP_TIMEOUT or MHC_FALSE_STATUS_TIMEOUT to defaults or non-durations."""
    if props.get("site_kind") != "edge":
        return []

    cluster = props.get("cluster_name")
    variables = _variables(props)
    explicit = {str(name) for name in props.get("explicit_edge_timeouts") or []}
    violations = []
    for variable, setting in EDGE_REQUIRED_TIMEOUTS.items():
        value = variables.get(variable)
        if variable not in explicit:
            violations.append(
                _("Cluster {cluster}: edge site without an explicit {variable} (rendered value: {value}); slow GPU workers at edge sites need a timeout chosen for the site. Set {setting} in the stack configuration, as a Go duration such as 60m.").format(
                    cluster=cluster, variable=variable, value=_shown(value), setting=setting
                )
            )
            continue

        if not _is_go_duration(value):
            violations.append(
                _("Cluster {cluster}: {variable} is {value!r}, which is not a Go duration string; TKG copies it into the MachineHealthCheck unchecked. Set {setting} to a duration with a unit, such as 60m or 1h.").format(
                    cluster=cluster, variable=variable, value=_number_or_value(value), setting=setting
                )
            )

    return violations


# ---------------------------------------------------------------------------------------------------------
# Air-gapped sites: every image and chart from the site registry


def cluster_registry(props: Mapping[str, Any]) -> list[str]:
    """Report a TKG_CUSTOM_IMAGE_REPOSITORY other than the site's registry, when the site has one."""
    registry = _site(props).get("registry")
    if not registry:
        return []

    value = _variables(props).get("TKG_CUSTOM_IMAGE_REPOSITORY")
    if value == registry:
        return []

    return [
        _("Cluster {cluster}: TKG_CUSTOM_IMAGE_REPOSITORY is {value}, but the site registry is {registry}; at an air-gapped site every TKG image must come from it. Set tkg-gpu:registry.repository to {registry} and remove any other value of TKG_CUSTOM_IMAGE_REPOSITORY.").format(
            cluster=props.get("cluster_name"), value=_shown(value), registry=registry
        )
    ]


def _without_scheme(reference: str) -> str:
    return _SCHEME.sub("", reference.strip())


def in_registry(reference: str, registry: str) -> bool:
    """Tell whether an image, chart or repository reference points into ``registry`` (``host[:port][/path]``).

    The host is compared without case, the path as written; a scheme such as ``oci://`` is ignored.
    """
    prefix = _without_scheme(registry).rstrip("/")
    target = _without_scheme(reference)
    prefix_host, _slash, prefix_path = prefix.partition("/")
    target_host, _slash, target_path = target.partition("/")
    if prefix_host.lower() != target_host.lower() or not target_path:
        return False

    return not prefix_path or target_path == prefix_path or target_path.startswith(prefix_path + "/")


def _is_local_chart(chart: str) -> bool:
    return chart.startswith(("./", "../", "/")) or (not _SCHEME.match(chart) and chart.endswith(".tgz"))


def _image_references(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """Yield ``(path, reference)`` for every image reference in Helm values.

    A mapping with ``registry`` gives ``registry/repository``, or the registry alone as a prefix.
    Otherwise ``repository`` is the reference
    and a sibling ``image`` is only the image name, as in the GPU Operator chart. An ``image`` string with
    neither sibling is a full reference.
    """
    if isinstance(node, Mapping):
        registry = node.get("registry")
        repository = node.get("repository")
        image = node.get("image")
        if isinstance(registry, str) and registry:
            reference = f"{registry}/{repository}" if isinstance(repository, str) and repository else registry
            yield f"{path}.registry", reference
        elif isinstance(repository, str) and repository:
            yield f"{path}.repository", repository
        elif isinstance(image, str) and image:
            yield f"{path}.image", image

        for key, child in node.items():
            if isinstance(child, (Mapping, Sequence)) and not isinstance(child, str):
                yield from _image_references(child, f"{path}.{key}")
    elif isinstance(node, Sequence) and not isinstance(node, str):
        for index, child in enumerate(node):
            yield from _image_references(child, f"{path}[{index}]")


def release_references_in_registry(props: Mapping[str, Any], registry: str | None, resource_name: str) -> list[str]:
    """Report every chart and image reference of a Helm Release that points outside the site registry.

    ``registry`` comes from the pack configuration (``siteRegistry``). Without it the rule does nothing.
    """
    if not registry:
        return []

    release = props.get("name") or resource_name
    violations = []
    chart = str(props.get("chart") or "")
    repository_opts = props.get("repositoryOpts") or {}
    repo = repository_opts.get("repo")
    sources = []
    if repo:
        sources.append(("repositoryOpts.repo", str(repo)))
    if _SCHEME.match(chart):
        sources.append(("chart", chart))
    elif chart and not repo and not _is_local_chart(chart):
        violations.append(
            _("Release {release}: chart {chart} is fetched from a Helm repository that the policy cannot see; at an air-gapped site the chart must come from {registry}. Set repositoryOpts.repo to a repository in {registry}, or chart to oci://{registry}/<project>/{chart}.").format(
                release=release, chart=chart, registry=registry
            )
        )

    sources.extend(_image_references(props.get("values") or {}, "values"))
    for field, reference in sources:
        # A registry alone (no "/") is the prefix of image references, so test an image name below it.
        probe = f"{reference}/image" if field.endswith(".registry") and "/" not in reference else reference
        if not in_registry(probe, registry):
            violations.append(
                _("Release {release}: {field} is {reference}, which is outside the site registry {registry}; pods would fail with ImagePullBackOff at an air-gapped site. Point {field} at {registry}/... (mirror the chart and every operand image there).").format(
                    release=release, field=field, reference=reference, registry=registry
                )
            )

    return violations


def _pod_containers(props: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    spec = props.get("spec") or {}
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for index, container in enumerate(spec.get(field) or []):
            yield f"spec.{field}[{index}]", container


def pod_images_in_registry(props: Mapping[str, Any], registry: str | None, resource_name: str) -> list[str]:
    """Report every container image of a Pod outside the site registry (``siteRegistry`` in the pack config)."""
    if not registry:
        return []

    pod = (props.get("metadata") or {}).get("name") or resource_name
    violations = []
    for field, container in _pod_containers(props):
        image = container.get("image")
        if image and in_registry(str(image), registry):
            continue

        violations.append(
            _("Pod {pod}: {field} ({name}) uses image {image}, which is outside the site registry {registry}; it would fail with ImagePullBackOff at an air-gapped site. Use an image from {registry}, referenced by digest.").format(
                pod=pod, field=field, name=_shown(container.get("name")), image=_shown(image), registry=registry
            )
        )

    return violations


# ---------------------------------------------------------------------------------------------------------
# GPU Operator and the CUDA validation Pod


def _chart_name(chart: str) -> str:
    """Return the chart's name from a name, ``repo/name``, an ``oci://`` reference or a ``.tgz`` archive."""
    name = _without_scheme(chart).rstrip("/").rsplit("/", 1)[-1]
    if name.endswith(".tgz"):
        name = re.sub(r"-v?\d+(\.\d+)*([-+][0-9A-Za-z.-]+)?$", "", name.removesuffix(".tgz"))

    return name


def gpu_operator_chart_pinned(props: Mapping[str, Any], resource_name: str) -> list[str]:
    """Report a gpu-operator Release without an exact chart version or without a fixed release name.

    NOTE: policies see the inputs after the kubernetes provider's Check, which replaces ``version`` with
    the version in the loaded chart's Chart.yaml and fills an unset ``name`` with ``<resource name>-<8 hex
    digits>`` (pulumi-kubernetes helm_release.go). With provider 4.34.2, a local chart requested as
    ``>=26.0.0-0`` reached the policy as ``v26.3.0-lab.1``. The provider loads the chart only when no input
    is unknown, so a range reaches this check only in a preview where another input is still unknown. The pin
    of tkg-gpu's own release is therefore the exact-version check of ``gpuOperator.version`` in the stack
    configuration. The name check recognises the generated form and works under the engine.
    """
    chart = str(props.get("chart") or "")
    if _chart_name(chart) != GPU_OPERATOR_CHART:
        return []

    violations = []
    name = props.get("name")
    version = props.get("version")
    release = name or resource_name
    if not version or not _EXACT_VERSION.match(str(version)):
        violations.append(
            _("Release {release}: chart gpu-operator has version {version}, which is not an exact chart version; an unpinned chart changes the driver and the CRDs on the next update. Set version to an exact release such as v26.3.0.").format(
                release=release, version=_shown(version)
            )
        )

    autonamed = re.fullmatch(re.escape(resource_name) + r"-[0-9a-f]{8}", str(name or "")) is not None
    if not name or autonamed or not _RELEASE_NAME.match(str(name)):
        violations.append(
            _("Release {release}: the gpu-operator release name is {name}, which is not a fixed name. Without one, Pulumi picks a random name, and a replacement installs a second operator next to the first. Set name to a fixed DNS label of at most 53 characters, such as gpu-operator.").format(
                release=resource_name, name=_shown(name)
            )
        )

    return violations


def validation_requests_gpu(props: Mapping[str, Any], resource_name: str) -> list[str]:
    """Report a tkg-gpu-validation Pod whose containers have no nvidia.com/gpu limit of at least 1."""
    metadata = props.get("metadata") or {}
    labels = metadata.get("labels") or {}
    if labels.get(PART_OF_LABEL) != VALIDATION_PART_OF:
        return []

    found = []
    for field, container in _pod_containers(props):
        limits = (container.get("resources") or {}).get("limits") or {}
        count = _integer(limits.get(GPU_RESOURCE))
        if count is not None and count >= 1:
            return []
        if GPU_RESOURCE in limits:
            found.append(f"{field}: {limits.get(GPU_RESOURCE)!r}")

    return [
        _("Pod {pod}: labelled {label}={value} but no container has a {resource} limit of 1 or more ({found}); the validation would run without a GPU and prove nothing. Set resources.limits {resource}: 1 on the CUDA test container.").format(
            pod=metadata.get("name") or resource_name,
            label=PART_OF_LABEL,
            value=VALIDATION_PART_OF,
            resource=GPU_RESOURCE,
            found=", ".join(found) if found else _("no GPU limit found"),
        )
    ]
