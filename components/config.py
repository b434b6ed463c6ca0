"""Site configuration: pydantic models for the ``tkg-gpu:`` stack settings, validated before any resource.

Every key is written in camelCase in ``Pulumi.<stack>.yaml``; error messages use that spelling so an
operator can find the key in the file. The vCenter password is a Pulumi secret and never enters these
models.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails

from components import gpu_catalog
from components.i18n import _, translation

NAMESPACE = "tkg-gpu"
CONFIG_KEYS = (
    "role",
    "site",
    "vcenter",
    "hosts",
    "gpu",
    "cluster",
    "edge",
    "tanzu",
    "registry",
    "gpuOperator",
    "validation",
    "managementStack",
    "management",
)
# Settings whose value is a plain string rather than an object or a list.
TEXT_KEYS = ("role", "managementStack")
PASSWORD_KEY = "vcenterPassword"

_GO_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_HARDWARE_VERSION = re.compile(r"^vmx-(\d{2})$")
_EXACT_CHART_VERSION = re.compile(r"^v?\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
_STACK_NAME = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){0,2}$")
_SSH_PUBLIC_KEY = re.compile(r"^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp(256|384|521)|sk-\S+) [A-Za-z0-9+/]+=*( .*)?$")


_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def duration_seconds(value: str) -> float:
    """Convert a Go duration string such as ``1h30m`` to seconds."""
    if not _GO_DURATION.match(value):
        raise ValueError(f"{value!r} is not a Go duration string")

    return sum(
        float(number) * _DURATION_UNITS[unit]
        for number, unit in re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", value)
    )


class ConfigError(ValueError):
    """Invalid stack configuration; the message lists every problem found, one per line."""


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


def _reject_bare_number(value: Any) -> Any:
    """Give an unquoted YAML number in a duration field the duration message, not a type error."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError(
            _("must be a Go duration string such as 40m or 1h (a bare number is not accepted)")
        )

    return value


def _check_go_duration(value: str | None) -> str | None:
    if value is not None and not _GO_DURATION.match(value):
        raise ValueError(
            _("must be a Go duration string such as 40m or 1h (a bare number is not accepted)")
        )

    return value


class SiteSettings(_Model):
    name: str
    kind: Literal["datacenter", "edge"] = "datacenter"

    @field_validator("name")
    @classmethod
    def _name_is_dns_label(cls, value: str) -> str:
        if not _DNS_LABEL.match(value) or len(value) > 63:
            raise ValueError(_("must be a lower-case DNS label such as edge-shanghai-01"))

        return value


class VCenterSettings(_Model):
    server: str
    """vCenter address, ``host`` or ``host:port``; port 443 when omitted."""
    username: str
    insecure: bool = False
    """Skip TLS certificate verification; only for labs, pair it with ``thumbprint`` elsewhere."""
    thumbprint: str | None = None
    datacenter: str
    compute_cluster: str
    datastore: str
    network: str
    resource_pool: str
    folder: str
    template: str
    """Inventory path or name of the GPU worker VM template (EFI firmware, vmx-17 or later)."""

    @field_validator("server")
    @classmethod
    def _server_has_no_scheme(cls, value: str) -> str:
        if "://" in value or "/" in value or not value.strip():
            raise ValueError(_("must be a host name or host:port without a scheme or path, such as vcenter.example.com"))

        return value.strip()

    @field_validator("thumbprint")
    @classmethod
    def _thumbprint_is_sha1(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"([0-9A-Fa-f]{2}:){19}[0-9A-Fa-f]{2}", value):
            raise ValueError(_("must be a SHA-1 thumbprint of 20 colon-separated hex bytes, such as 3A:1F:…:9C"))

        return value

    @model_validator(mode="after")
    def _tls_is_verifiable(self) -> VCenterSettings:
        if not self.insecure and self.thumbprint is None:
            raise ValueError(
                _("set vcenter.thumbprint to the vCenter certificate's SHA-1 thumbprint, or vcenter.insecure: true in a lab")
            )

        return self


class GpuSettings(_Model):
    """GPU selection: a catalogue model, one vendor:device pair, or an explicit device list per worker."""

    model: str | None = None
    vendor_device: str | None = None
    """One ``0xVVVV:0xDDDD`` pair, for GPUs missing from the catalogue."""
    memory_gb: int | None = Field(default=None, gt=0)
    """GPU memory in GB; needed only for a ``vendorDevice`` that is not in the catalogue."""
    per_worker: int = Field(default=1, ge=1, le=16)
    worker_devices: list[str] | None = None
    """Explicit ``VSPHERE_WORKER_PCI_DEVICES`` entries, one pair per GPU in each worker VM."""

    @field_validator("model")
    @classmethod
    def _model_is_known(cls, value: str | None) -> str | None:
        if value is not None and gpu_catalog.find_model(value) is None:
            known = ", ".join(model.key for model in gpu_catalog.GPU_MODELS)
            raise ValueError(_("unknown GPU model; accepted models: {known}").format(known=known))

        return value

    @field_validator("vendor_device")
    @classmethod
    def _vendor_device_is_pair(cls, value: str | None) -> str | None:
        if value is not None:
            _parse_pair_or_raise(value)

        return value

    @field_validator("worker_devices")
    @classmethod
    def _worker_devices_are_pairs(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            if not value:
                raise ValueError(_("must list at least one 0xVVVV:0xDDDD pair"))
            for item in value:
                _parse_pair_or_raise(item)

        return value

    @model_validator(mode="after")
    def _exactly_one_selection(self) -> GpuSettings:
        chosen = [name for name in ("model", "vendor_device", "worker_devices") if getattr(self, name) is not None]
        if len(chosen) != 1:
            raise ValueError(
                _("set exactly one of gpu.model, gpu.vendorDevice or gpu.workerDevices, for example gpu.model: A100-PCIE-80GB")
            )

        if self.worker_devices is not None and "per_worker" in self.model_fields_set:
            raise ValueError(_("gpu.perWorker cannot be combined with gpu.workerDevices, which lists every GPU of a worker"))

        return self

    def worker_pairs(self) -> list[tuple[int, int]]:
        """Return the vendor:device pair of every GPU in one worker VM, as unsigned IDs."""
        if self.worker_devices is not None:
            return [gpu_catalog.parse_pci_pair(item) for item in self.worker_devices]

        if self.vendor_device is not None:
            return [gpu_catalog.parse_pci_pair(self.vendor_device)] * self.per_worker

        model = gpu_catalog.find_model(self.model or "")
        assert model is not None, "validated by _model_is_known"

        return [(gpu_catalog.NVIDIA_VENDOR_ID, model.device_ids[0])] * self.per_worker


def _parse_pair_or_raise(text: str) -> None:
    try:
        gpu_catalog.parse_pci_pair(text)
    except ValueError:
        raise ValueError(
            _("must be a vendor:device pair in hex, 0xVVVV:0xDDDD, such as 0x10DE:0x20B5")
        ) from None


class ClusterSettings(_Model):
    name: str
    namespace: str = "default"
    plan: Literal["dev", "prod"] = "dev"
    control_plane_endpoint: str | None = None
    """Virtual IP or FQDN of the control plane (``VSPHERE_CONTROL_PLANE_ENDPOINT``)."""
    avi_control_plane_ha: bool = False
    """NSX Advanced Load Balancer provides the endpoint instead (``AVI_CONTROL_PLANE_HA_PROVIDER``)."""
    ssh_authorized_key: str
    """Public SSH key installed on every node for the ``capv`` user (``VSPHERE_SSH_AUTHORIZED_KEY``)."""
    worker_count: int = Field(default=1, ge=1, le=100)
    worker_cpus: int = Field(default=8, ge=2, le=768)
    worker_memory_mib: int = Field(default=65536, ge=4096)
    worker_disk_gib: int = Field(default=80, ge=20)
    hardware_version: str = "vmx-17"
    rollout_strategy: Literal["RollingUpdate", "OnDelete"] | None = None
    """Worker rollout; when unset, OnDelete unless the site has a spare GPU for a surge VM."""
    mmio_size_gb: int | None = None
    """Override of ``pciPassthru.64bitMMIOSizeGB``; must be a power of two, no smaller than computed."""
    os_name: str = "ubuntu"
    os_version: str = "22.04"
    os_arch: str = "amd64"
    class_based: bool = True
    """A class-based cluster (TKG 2.x default); false renders a plan-based one (``ALLOW_LEGACY_CLUSTER``)."""
    pod_security_standard_enforce: Literal["privileged", "baseline", "restricted"] | None = None
    """``POD_SECURITY_STANDARD_ENFORCE``; when set, the GPU Operator's namespace is labelled privileged."""

    @field_validator("name")
    @classmethod
    def _is_dns_label(cls, value: str) -> str:
        if not _DNS_LABEL.match(value) or len(value) > 42:
            raise ValueError(
                _("must be a lower-case DNS label of at most 42 characters, such as gpu-wc-01")
            )

        return value

    @field_validator("namespace")
    @classmethod
    def _namespace_is_dns_label(cls, value: str) -> str:
        if not _DNS_LABEL.match(value) or len(value) > 63:
            raise ValueError(_("must be a lower-case DNS label of at most 63 characters, such as default"))

        return value

    @field_validator("os_version", mode="before")
    @classmethod
    def _os_version_as_text(cls, value: Any) -> Any:
        # An unquoted 22.04 in YAML arrives as a float; the version is text either way.
        return str(value) if isinstance(value, (int, float)) else value

    @field_validator("ssh_authorized_key")
    @classmethod
    def _ssh_key_format(cls, value: str) -> str:
        if not _SSH_PUBLIC_KEY.match(value.strip()):
            raise ValueError(_("must be an OpenSSH public key line, such as ssh-ed25519 AAAAC3... user@host"))

        return value.strip()

    @model_validator(mode="after")
    def _endpoint_or_avi(self) -> ClusterSettings:
        if not self.control_plane_endpoint and not self.avi_control_plane_ha:
            raise ValueError(
                _("set cluster.controlPlaneEndpoint to the control plane's virtual IP or FQDN, or cluster.aviControlPlaneHa: true when NSX Advanced Load Balancer provides it")
            )

        return self

    @model_validator(mode="after")
    def _prod_plan_workers(self) -> ClusterSettings:
        # The prod plan spreads workers over three MachineDeployments (md-0 to md-2), and the tanzu CLI
        # rejects fewer than 3; the lab's tanzu double models this rule.
        if self.plan == "prod" and self.worker_count < 3:
            raise ValueError(_("the prod plan needs cluster.workerCount of at least 3; raise workerCount or use plan: dev"))

        return self

    @field_validator("hardware_version")
    @classmethod
    def _hardware_version_format(cls, value: str) -> str:
        if not _HARDWARE_VERSION.match(value):
            raise ValueError(_("must be vmx-<N>, such as vmx-17"))

        return value

    @field_validator("mmio_size_gb")
    @classmethod
    def _mmio_is_power_of_two(cls, value: int | None) -> int | None:
        if value is not None and (value <= 0 or value & (value - 1)):
            raise ValueError(_("must be a power of two in GB, such as 256"))

        return value


class EdgeSettings(_Model):
    """MachineHealthCheck timeouts, as Go duration strings."""

    node_startup_timeout: str | None = None
    mhc_false_status_timeout: str | None = None
    mhc_unknown_status_timeout: str | None = None

    _numbers = field_validator(
        "node_startup_timeout", "mhc_false_status_timeout", "mhc_unknown_status_timeout", mode="before"
    )(classmethod(lambda cls, value: _reject_bare_number(value)))
    _durations = field_validator("mhc_false_status_timeout", "mhc_unknown_status_timeout")(
        classmethod(lambda cls, value: _check_go_duration(value))
    )

    @field_validator("node_startup_timeout")
    @classmethod
    def _node_startup_minimum(cls, value: str | None) -> str | None:
        _check_go_duration(value)
        # Cluster API's MachineHealthCheck webhook rejects a node startup timeout under 30s other than 0 (off).
        if value is not None and 0 < duration_seconds(value) < 30:
            raise ValueError(_("must be 0s (off) or at least 30s, the Cluster API minimum"))

        return value


class TanzuSettings(_Model):
    cli: str = "tanzu"
    """Name on PATH or absolute path of the tanzu CLI."""
    create_timeout: str = "30m"
    delete_timeout: str = "30m"

    _numbers = field_validator("create_timeout", "delete_timeout", mode="before")(
        classmethod(lambda cls, value: _reject_bare_number(value))
    )
    _durations = field_validator("create_timeout", "delete_timeout")(
        classmethod(lambda cls, value: _check_go_duration(value))
    )

    @field_validator("create_timeout")
    @classmethod
    def _create_timeout_minimum(cls, value: str) -> str:
        # The tanzu CLI (tanzu-framework v0.29.0) silently replaces a create timeout under 15m with 30m.
        if _GO_DURATION.match(value) and duration_seconds(value) < 15 * 60:
            raise ValueError(_("must be at least 15m, because the tanzu CLI replaces shorter create timeouts with 30m"))

        return value


class RegistrySettings(_Model):
    """The site's private registry for air-gapped sites (``TKG_CUSTOM_IMAGE_REPOSITORY``)."""

    repository: str
    """``host[:port]/project`` serving every TKG image, such as ``harbor.edge01.example.com/tkg``."""
    ca_certificate: str | None = None
    """Base64-encoded PEM of the registry's CA, trusted on every node."""
    skip_tls_verify: bool = False

    @field_validator("repository")
    @classmethod
    def _repository_format(cls, value: str) -> str:
        if "://" in value or not re.fullmatch(r"[A-Za-z0-9.-]+(:\d+)?(/[a-z0-9._-]+)+", value):
            raise ValueError(_("must be host[:port]/project without a scheme, such as harbor.example.com/tkg"))

        return value

    @field_validator("ca_certificate")
    @classmethod
    def _ca_is_base64_pem(cls, value: str | None) -> str | None:
        if value is None:
            return value

        try:
            decoded = base64.b64decode(value, validate=True)
        except binascii.Error:
            raise ValueError(_("must be the base64 encoding of a PEM certificate")) from None

        if b"-----BEGIN CERTIFICATE-----" not in decoded:
            raise ValueError(_("must be the base64 encoding of a PEM certificate"))

        return value


def _check_duration_at_least(value: str, seconds: float, example: str) -> str:
    _check_go_duration(value)
    if duration_seconds(value) < seconds:
        raise ValueError(_("must be at least {example}").format(example=example))

    return value


class ChartSource(_Model):
    """Source of the GPU Operator chart: exactly one of an HTTP repository, an OCI reference or a path."""

    repository: str | None = None
    """Helm repository URL, such as ``https://helm.ngc.nvidia.com/nvidia``."""
    oci: str | None = None
    """OCI chart reference, such as ``oci://harbor.example.com/nvidia/gpu-operator``."""
    path: str | None = None
    """Chart directory or archive on disk, relative to the project directory (air-gapped sites)."""

    @field_validator("repository")
    @classmethod
    def _repository_is_http(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
            raise ValueError(_("must be an http:// or https:// Helm repository URL, such as https://helm.ngc.nvidia.com/nvidia"))

        return value

    @field_validator("oci")
    @classmethod
    def _oci_reference(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"oci://[A-Za-z0-9.-]+(:\d+)?(/[a-z0-9._-]+)+", value):
            raise ValueError(_("must be oci://host[:port]/path/chart, such as oci://harbor.example.com/nvidia/gpu-operator"))

        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> ChartSource:
        sources = [value for value in (self.repository, self.oci, self.path) if value]
        if len(sources) != 1:
            raise ValueError(_("set exactly one of gpuOperator.chart.repository, gpuOperator.chart.oci or gpuOperator.chart.path"))

        return self


DEFAULT_CHART_REPOSITORY = "https://helm.ngc.nvidia.com/nvidia"


class GpuOperatorSettings(_Model):
    """The NVIDIA GPU Operator Helm release on the workload cluster."""

    enabled: bool = True
    chart: ChartSource = ChartSource(repository=DEFAULT_CHART_REPOSITORY)
    version: str = "v26.3.0"
    """Exact chart version; the 26.3.x line stays on driver branch R580, the last one for Volta."""
    release_name: str = "gpu-operator"
    namespace: str = "gpu-operator"
    driver_version: str | None = None
    """``driver.version``; when unset, chosen by GPU generation (see docs/configuration.md)."""
    kernel_module_type: Literal["auto", "open", "proprietary"] | None = None
    """``driver.kernelModuleType``; when unset, proprietary for Volta and open for later generations."""
    driver_enabled: bool = True
    """False when the node image already has the NVIDIA driver (``driver.enabled``)."""
    timeout: str = "15m"
    """How long Helm waits for the operator's resources to become ready."""
    values: dict[str, Any] = Field(default_factory=dict)
    """Further chart values, merged over the ones tkg-gpu sets."""

    @field_validator("version")
    @classmethod
    def _exact_version(cls, value: str) -> str:
        if not _EXACT_CHART_VERSION.match(value):
            raise ValueError(_("must be an exact chart version such as v26.3.0, not a range"))

        return value

    @field_validator("release_name")
    @classmethod
    def _release_name(cls, value: str) -> str:
        if not _DNS_LABEL.match(value) or len(value) > 53:
            raise ValueError(_("must be a lower-case DNS label of at most 53 characters, such as gpu-operator"))

        return value

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not _DNS_LABEL.match(value) or len(value) > 63:
            raise ValueError(_("must be a lower-case DNS label of at most 63 characters, such as gpu-operator"))

        return value

    @field_validator("driver_version")
    @classmethod
    def _driver_version(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"\d{3}\.\d+(\.\d+)?", value):
            raise ValueError(_("must be an NVIDIA driver version such as 580.126.20"))

        return value

    _timeout_number = field_validator("timeout", mode="before")(classmethod(lambda cls, value: _reject_bare_number(value)))

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: str) -> str:
        return _check_duration_at_least(value, 60, "1m")


class ValidationSettings(_Model):
    """The CUDA vector-add Pod that proves a GPU works after the operator is installed."""

    enabled: bool = True
    image: str = "registry.k8s.io/cuda-vector-add:v0.1"
    namespace: str = "tkg-gpu-validation"
    timeout: str = "10m"
    """How long to wait for the Pod to finish, including scheduling and the image pull."""

    @field_validator("image")
    @classmethod
    def _image_reference(cls, value: str) -> str:
        if "://" in value or not re.fullmatch(r"[A-Za-z0-9.-]+(:\d+)?(/[a-z0-9._-]+)+(:[\w.-]+)?(@sha256:[0-9a-f]{64})?", value):
            raise ValueError(_("must be an image reference without a scheme, such as registry.k8s.io/cuda-vector-add:v0.1"))

        return value

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not _DNS_LABEL.match(value) or len(value) > 63:
            raise ValueError(_("must be a lower-case DNS label of at most 63 characters, such as tkg-gpu-validation"))

        return value

    _timeout_number = field_validator("timeout", mode="before")(classmethod(lambda cls, value: _reject_bare_number(value)))

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: str) -> str:
        return _check_duration_at_least(value, 10, "10s")


class ManagementSettings(_Model):
    """The management cluster a ``management`` stack tunes."""

    kubeconfig: str
    """Path of the management cluster's admin kubeconfig; its content is kept only as a secret."""
    context: str | None = None
    """Context in that file; its current context when unset."""
    etcd_dial_timeout: str = "40s"
    """``--etcd-dial-timeout-duration`` of the kubeadm control-plane controller (Cluster API default 10s)."""
    controller_namespace: str = "capi-system"
    controller_deployment: str = "capi-kubeadm-control-plane-controller-manager"

    _timeout_number = field_validator("etcd_dial_timeout", mode="before")(
        classmethod(lambda cls, value: _reject_bare_number(value))
    )

    @field_validator("etcd_dial_timeout")
    @classmethod
    def _dial_timeout(cls, value: str) -> str:
        return _check_duration_at_least(value, 1, "1s")

    @field_validator("controller_namespace", "controller_deployment")
    @classmethod
    def _dns_name(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?", value) or len(value) > 253:
            raise ValueError(_("must be a lower-case Kubernetes object name, such as capi-system"))

        return value


# Edge defaults from the TKG edge workload-cluster procedure; datacentre sites keep TKG's own defaults.
EDGE_DEFAULTS = {"node_startup_timeout": "60m", "mhc_false_status_timeout": "40m"}


class SiteConfig(_Model):
    role: Literal["site", "management"] = "site"
    """``management`` makes the stack a management stack (ManagementConfig), parsed by parse_management_config."""
    site: SiteSettings
    vcenter: VCenterSettings
    hosts: list[str] = Field(min_length=1)
    gpu: GpuSettings
    cluster: ClusterSettings
    edge: EdgeSettings = EdgeSettings()
    tanzu: TanzuSettings = TanzuSettings()
    registry: RegistrySettings | None = None
    gpu_operator: GpuOperatorSettings = GpuOperatorSettings()
    validation: ValidationSettings = ValidationSettings()
    management_stack: str | None = None
    """Fully qualified name of the management stack, such as ``organization/tkg-gpu/mgmt``."""

    @field_validator("management_stack")
    @classmethod
    def _stack_name(cls, value: str | None) -> str | None:
        if value is not None and not _STACK_NAME.match(value):
            raise ValueError(_("must be a stack name such as organization/tkg-gpu/mgmt"))

        return value

    @field_validator("hosts")
    @classmethod
    def _hosts_unique(cls, value: list[str]) -> list[str]:
        duplicates = sorted({host for host in value if value.count(host) > 1})
        if duplicates:
            raise ValueError(_("lists a host more than once: {hosts}").format(hosts=", ".join(duplicates)))

        return value

    def edge_timeouts(self) -> dict[str, str]:
        """Return the MachineHealthCheck timeouts to render, with edge defaults filled in at edge sites."""
        values = self.edge.model_dump(exclude_none=True)
        if self.site.kind == "edge":
            values = {**EDGE_DEFAULTS, **values}

        return values


def _literal_choices(expected: str) -> str:
    """Rejoin pydantic's ``'a', 'b' or 'c'`` list of allowed values around a translated "or"."""
    choices = re.findall(r"'[^']*'", expected)
    if len(choices) < 2 or f"{', '.join(choices[:-1])} or {choices[-1]}" != expected:
        return expected

    # TRANSLATORS: joins the allowed values of a setting, each in quotes: 'dev' or 'prod'.
    return _("{choices} or {last}").format(choices=", ".join(choices[:-1]), last=choices[-1])


def _too_short(ctx: dict[str, Any]) -> str | None:
    if ctx["field_type"] != "List":
        return None

    return translation().ngettext(
        "List should have at least {min_length} item after validation, not {actual_length}",
        "List should have at least {min_length} items after validation, not {actual_length}",
        ctx["min_length"],
    ).format(min_length=ctx["min_length"], actual_length=ctx["actual_length"])


# Catalog messages for pydantic's built-in errors, by error type, filled from the error's ``ctx``. Each
# English msgid repeats the text of pydantic 2.14 (pydantic-core 2.50), so English output is unchanged.
_BUILTIN_MESSAGES: dict[str, Callable[[dict[str, Any]], str | None]] = {
    "bool_parsing": lambda ctx: _("Input should be a valid boolean, unable to interpret input"),
    "bool_type": lambda ctx: _("Input should be a valid boolean"),
    "dict_type": lambda ctx: _("Input should be a valid dictionary"),
    "greater_than": lambda ctx: _("Input should be greater than {gt}").format(gt=ctx["gt"]),
    "greater_than_equal": lambda ctx: _("Input should be greater than or equal to {ge}").format(ge=ctx["ge"]),
    "int_from_float": lambda ctx: _("Input should be a valid integer, got a number with a fractional part"),
    "int_parsing": lambda ctx: _("Input should be a valid integer, unable to parse string as an integer"),
    "int_parsing_size": lambda ctx: _("Unable to parse input string as an integer, exceeded maximum size"),
    "int_type": lambda ctx: _("Input should be a valid integer"),
    "less_than": lambda ctx: _("Input should be less than {lt}").format(lt=ctx["lt"]),
    "less_than_equal": lambda ctx: _("Input should be less than or equal to {le}").format(le=ctx["le"]),
    "list_type": lambda ctx: _("Input should be a valid list"),
    "literal_error": lambda ctx: _("Input should be {expected}").format(expected=_literal_choices(ctx["expected"])),
    "model_type": lambda ctx: _("Input should be a valid dictionary or instance of {class_name}").format(
        class_name=ctx["class_name"]
    ),
    "string_type": lambda ctx: _("Input should be a valid string"),
    "string_unicode": lambda ctx: _("Input should be a valid string, unable to parse raw data as a unicode string"),
    "too_short": _too_short,
}


def _builtin_message(item: ErrorDetails) -> str:
    """Translate a pydantic built-in error; a type or ``ctx`` shape not in the table keeps pydantic's English."""
    render = _BUILTIN_MESSAGES.get(item["type"])
    try:
        text = render(item.get("ctx") or {}) if render is not None else None
    except KeyError:
        text = None

    return item["msg"] if text is None else text


# Values under these keys are never echoed: an unknown key may hold anything, including a password,
# and an operator may paste a private key or certificate where the public one belongs.
_UNECHOED_KEY_PARTS = ("password", "secret", "token", "sshauthorizedkey", "cacertificate", "privatekey")


def _may_hold_secret(key: str) -> bool:
    lowered = key.lower()

    return any(part in lowered for part in _UNECHOED_KEY_PARTS)


def format_validation_error(error: pydantic.ValidationError) -> str:
    """Render pydantic errors as ``tkg-gpu:<key>: <problem> (value: …)`` lines in camelCase key spelling."""
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "missing":
            message = _("missing required setting")
        elif item["type"] == "extra_forbidden":
            message = _("unknown setting; check the spelling against docs/configuration.md")
        elif item["type"] == "literal_error":
            message = _("invalid value; {detail}").format(detail=_builtin_message(item))
        elif item["type"] != "value_error":
            message = _builtin_message(item)

        value = item.get("input")
        hidden = item["type"] in ("missing", "extra_forbidden") or isinstance(value, dict) or _may_hold_secret(key)
        # TRANSLATORS: appended to an error line to show the rejected value.
        value_suffix = "" if hidden else _(" (value: {value!r})").format(value=value)
        prefix = f"{NAMESPACE}:{key}" if key else NAMESPACE
        lines.append(f"{prefix}: {message}{value_suffix}")

    return "\n".join(lines)


class ManagementConfig(_Model):
    """A ``management`` stack: the management cluster's controller settings, no site resources."""

    role: Literal["management"]
    site: SiteSettings
    management: ManagementSettings


_ParsedConfig = TypeVar("_ParsedConfig", SiteConfig, ManagementConfig)


def is_management(raw: dict[str, Any]) -> bool:
    return raw.get("role") == "management"


def _validate(model: type[_ParsedConfig], raw: dict[str, Any]) -> _ParsedConfig:
    try:
        return model.model_validate(raw)
    except pydantic.ValidationError as error:
        header = _("Invalid tkg-gpu stack configuration; nothing was changed:")
        raise ConfigError(f"{header}\n{format_validation_error(error)}") from None


def parse_management_config(raw: dict[str, Any]) -> ManagementConfig:
    """Validate the settings of a management stack, raising ConfigError with one line per problem."""
    return _validate(ManagementConfig, raw)


def parse_site_config(raw: dict[str, Any]) -> SiteConfig:
    """Validate raw stack settings, raising ConfigError with one line per problem."""
    return _validate(SiteConfig, raw)
