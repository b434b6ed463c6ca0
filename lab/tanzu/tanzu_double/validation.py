"""Validation of a flat TKG configuration into a ClusterSpec.

The checks follow TKG at tanzu-framework v0.29.0: the Go checks in tkg/client/validate.go and
tkg/tkgctl/create_cluster.go, and the template checks in providers/yttcc/lib/helpers.star and
providers/ytt/lib/validate.star. The messages are worded by this double. Two quirks that
scripts depend on are kept: the PCI format error names the control-plane variable, and
non-hex text gives the raw base-16 error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .config import FlatConfig, decode_password
from .errors import CliError
from .godur import GoDurationError, parse_go_duration

# The only device on TKG's built-in PCI allow-list: NVIDIA Tesla T4 (helpers.star, v0.29.0).
PCI_ALLOW_LIST = ((0x10DE, 0x1EB8),)

# Class-based ClusterClass schema default of pci.*.hardwareVersion (cconly/base.yaml, v0.29.0).
CLASS_DEFAULT_HARDWARE_VERSION = "vmx-15"

# TanzuKubernetesReleases the double's management cluster offers. The first is the default.
# NOTE: the TKG 2.2.0 TKR names are as recalled, not read from a release manifest.
KNOWN_TKRS = (
    "v1.25.7---vmware.2-tkg.1",
    "v1.24.11---vmware.1-tkg.1",
    "v1.23.17---vmware.1-tkg.1",
)

# Defaults from providers/config_default.yaml (v0.29.0) for the variables the double reads.
ROLE_DEFAULTS = {
    "CONTROL_PLANE": {"NUM_CPUS": 2, "MEM_MIB": 8192, "DISK_GIB": 40},
    "WORKER": {"NUM_CPUS": 2, "MEM_MIB": 4096, "DISK_GIB": 40},
}
# Node size minimums: the "small" node type (tkg/tkgconfigproviders/vsphere.go, v0.29.0).
SIZE_MINIMUMS = {"NUM_CPUS": 2, "MEM_MIB": 4096, "DISK_GIB": 20}

REQUIRED_VSPHERE_VARIABLES = (
    "VSPHERE_USERNAME",
    "VSPHERE_PASSWORD",
    "VSPHERE_SERVER",
    "VSPHERE_DATACENTER",
    "VSPHERE_RESOURCE_POOL",
    "VSPHERE_FOLDER",
    "VSPHERE_SSH_AUTHORIZED_KEY",
)

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_CLUSTER_NAME = re.compile(r"^[a-z0-9][a-z0-9-.]{0,61}[a-z0-9]$")
_HARDWARE_VERSION = re.compile(r"^vmx-[0-9]+$")
_MAX_UNHEALTHY = re.compile(r"^[0-9]+%?$")
_DURATION_VARIABLES = ("MHC_UNKNOWN_STATUS_TIMEOUT", "MHC_FALSE_STATUS_TIMEOUT", "NODE_STARTUP_TIMEOUT")
_ROLLOUT_STRATEGIES = ("RollingUpdate", "OnDelete")


class ValidationError(CliError):
    """The configuration is invalid; nothing was created."""


@dataclass(frozen=True)
class PciDevice:
    vendor_id: int
    device_id: int

    def label(self) -> str:
        return f"0x{self.vendor_id:X}:0x{self.device_id:X}"


@dataclass
class MachineSpec:
    """Size and GPU settings of the VMs of one role (control plane or worker)."""

    num_cpus: int
    memory_mib: int
    disk_gib: int
    custom_vmx_keys: dict[str, str] = field(default_factory=dict)
    pci_devices: list[PciDevice] = field(default_factory=list)
    hardware_version: str | None = None

    @property
    def effective_hardware_version(self) -> str | None:
        """Version CAPV upgrades the clone to: only set when the role has PCI devices.

        The ClusterClass patch that writes the version runs only for a non-empty device
        list, and the variable schema fills in vmx-15 when no version was given.
        """
        if not self.pci_devices:
            return None
        return self.hardware_version or CLASS_DEFAULT_HARDWARE_VERSION


@dataclass(frozen=True)
class PoolSpec:
    name: str
    replicas: int
    failure_domain: str | None = None


@dataclass(frozen=True)
class VSphereTarget:
    """Placement settings of the cluster VMs in vCenter, without credentials."""

    server: str
    insecure: bool
    thumbprint: str | None
    datacenter: str
    folder: str
    resource_pool: str
    datastore: str | None
    storage_policy_id: str | None
    network: str
    template: str | None
    clone_mode: str


@dataclass(frozen=True)
class VSphereCredentials:
    username: str
    password: str

    def __repr__(self) -> str:  # keep the password out of tracebacks and logs
        return f"VSphereCredentials(username={self.username!r}, password=<hidden>)"


@dataclass
class ClusterSpec:
    name: str
    namespace: str
    plan: str
    tkr: str
    control_plane_count: int
    pools: list[PoolSpec]
    control_plane: MachineSpec
    worker: MachineSpec
    control_plane_endpoint: str | None
    avi_control_plane_ha: bool
    vsphere: VSphereTarget
    ssh_authorized_key: str
    os_name: str
    os_version: str
    os_arch: str
    cluster_cidr: str
    service_cidr: str
    cni: str
    worker_rollout_strategy: str
    machine_health_check: dict[str, object]
    ntp_servers: list[str]

    @property
    def worker_count(self) -> int:
        return sum(pool.replicas for pool in self.pools)

    @property
    def kubernetes_version(self) -> str:
        """Kubernetes version of the TKR, e.g. v1.25.7+vmware.2."""
        return tkr_version(self.tkr).split("-tkg.")[0]

    @property
    def topology_version(self) -> str:
        return tkr_version(self.tkr)


def tkr_version(tkr_name: str) -> str:
    """Map a TKR name to its version: v1.25.7---vmware.2-tkg.1 -> v1.25.7+vmware.2-tkg.1."""
    return tkr_name.replace("---", "+", 1)


def resolve_tkr(requested: str | None) -> str:
    """Return the TKR for --tkr (an exact name or a name prefix), or the default one."""
    if not requested:
        return KNOWN_TKRS[0]
    if requested in KNOWN_TKRS:
        return requested
    matches = [name for name in KNOWN_TKRS if name.startswith(requested)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ValidationError(
            f"found multiple TKrs {matches} matching {requested!r}, please specify the full TKr name"
        )
    raise ValidationError(f"could not find a matching Tanzu Kubernetes release for name {requested!r}")


def validate_cluster_name(name: str) -> None:
    if not _DNS1123_LABEL.match(name) or len(name) > 63 or not _CLUSTER_NAME.match(name):
        raise ValidationError(
            f"invalid cluster name {name!r}: use 2 to 63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )


def validate_namespace(namespace: str) -> None:
    if not _DNS1123_LABEL.match(namespace) or len(namespace) > 63:
        raise ValidationError(
            f"invalid namespace {namespace!r}: use at most 63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )


class Base16Error(ValidationError):
    """A non-hex PCI ID. The message is the raw conversion error of TKG's template language."""


def _starlark_hex(text: str) -> int:
    """Convert like Starlark's int(text, 16): optional sign and 0x prefix, nothing else."""
    digits = text
    negative = False
    if digits[:1] in ("+", "-"):
        negative = digits[0] == "-"
        digits = digits[1:]
    if len(digits) > 1 and digits[0] == "0" and digits[1] in "xXoObB":
        if digits[1] not in "xX":
            digits = ""  # 0o and 0b prefixes contradict base 16 and are rejected
        else:
            digits = digits[2:]
    if not digits or not re.fullmatch(r"[0-9a-fA-F]+", digits):
        raise Base16Error(
            f"workload cluster configuration validation failed: template evaluation failed: "
            f"int: invalid literal with base 16: {text}"
        )
    value = int(digits, 16)
    return -value if negative else value


def parse_pci_devices(text: str, ignore_allow_list: bool) -> list[PciDevice]:
    """Parse `0xVVVV:0xDDDD[,0xVVVV:0xDDDD...]` as TKG's templates do.

    As in TKG, a format error names VSPHERE_CONTROL_PLANE_PCI_DEVICES whichever variable was
    wrong, and non-hex text gives the raw base-16 conversion error. The 0x prefix is optional
    because the conversion accepts bare hex digits too.
    """
    format_error = ValidationError(
        f"workload cluster configuration validation failed: VSPHERE_CONTROL_PLANE_PCI_DEVICES "
        f'"{text}" is not in the "0x<vendorId>:0x<deviceId>,0x<vendorId>:0x<deviceId>,..." format'
    )
    devices: list[PciDevice] = []
    for item in text.split(","):
        if item == "":
            raise format_error
        parts = item.split(":")
        if len(parts) != 2:
            raise format_error
        device = PciDevice(_starlark_hex(parts[0]), _starlark_hex(parts[1]))
        if not ignore_allow_list and (device.vendor_id, device.device_id) not in PCI_ALLOW_LIST:
            allowed = ",".join(f"0x{vendor:X}:0x{dev:X}" for vendor, dev in PCI_ALLOW_LIST)
            raise ValidationError(
                f"workload cluster configuration validation failed: PCI device {device.label()} "
                f"is not on the allow-list ({allowed}); set VSPHERE_IGNORE_PCI_DEVICES_ALLOW_LIST "
                "to true to pass other devices through"
            )
        devices.append(device)
    return devices


def parse_custom_vmx_keys(text: str, variable: str) -> dict[str, str]:
    """Parse `key=value[,key=value...]`. Like TKG, a value may not contain '=' or ','."""
    keys: dict[str, str] = {}
    for item in text.split(","):
        parts = item.split("=")
        if len(parts) != 2:
            raise ValidationError(
                f"workload cluster configuration validation failed: {variable} item {item!r} "
                "is not in key=value form; separate items with ','"
            )
        keys[parts[0]] = parts[1]
    return keys


def validate_hardware_version(text: str, variable: str) -> str:
    if not _HARDWARE_VERSION.match(text):
        raise ValidationError(
            f"workload cluster configuration validation failed: {variable} {text!r} is not a "
            "virtual hardware version; use vmx-<N>, for example vmx-17"
        )
    return text


def _int_variable(config: FlatConfig, name: str) -> int | None:
    text = config.get(name)
    if text is None:
        return None
    try:
        return int(text, 10)
    except ValueError:
        raise ValidationError(f"invalid {name}: {text!r} is not an integer") from None


def _machine_size(config: FlatConfig, role: str, quantity: str) -> int:
    """Role variable, else the generic VSPHERE_<quantity>, else the TKG default."""
    specific = f"VSPHERE_{role}_{quantity}"
    value = _int_variable(config, specific)
    name = specific
    if value is None:
        value = _int_variable(config, f"VSPHERE_{quantity}")
        name = f"VSPHERE_{quantity}"
    if value is None:
        return ROLE_DEFAULTS[role][quantity]
    if value < SIZE_MINIMUMS[quantity]:
        raise ValidationError(f"the minimum requirement of {name} is {SIZE_MINIMUMS[quantity]}")
    return value


def _machine_spec(config: FlatConfig, role: str, ignore_allow_list: bool) -> MachineSpec:
    spec = MachineSpec(
        num_cpus=_machine_size(config, role, "NUM_CPUS"),
        memory_mib=_machine_size(config, role, "MEM_MIB"),
        disk_gib=_machine_size(config, role, "DISK_GIB"),
    )
    vmx_keys = config.get(f"VSPHERE_{role}_CUSTOM_VMX_KEYS")
    if vmx_keys is not None:
        spec.custom_vmx_keys = parse_custom_vmx_keys(vmx_keys, f"VSPHERE_{role}_CUSTOM_VMX_KEYS")
    devices = config.get(f"VSPHERE_{role}_PCI_DEVICES")
    if devices is not None:
        spec.pci_devices = parse_pci_devices(devices, ignore_allow_list)
    version = config.get(f"VSPHERE_{role}_HARDWARE_VERSION")
    if version is not None:
        spec.hardware_version = validate_hardware_version(version, f"VSPHERE_{role}_HARDWARE_VERSION")
    return spec


def _plan(config: FlatConfig) -> str:
    plan = config.get("CLUSTER_PLAN")
    if plan is None:
        raise ValidationError("required config variable 'CLUSTER_PLAN' not set")
    normalized = {"dev": "dev", "devcc": "dev", "prod": "prod", "prodcc": "prod"}.get(plan)
    if normalized is None:
        raise ValidationError(f"invalid CLUSTER_PLAN {plan!r}: use dev or prod")
    return normalized


def _control_plane_count(config: FlatConfig, plan: str, flag_value: int) -> int:
    count = flag_value
    if count == 0:
        try:
            count = int(config.get_or("CONTROL_PLANE_MACHINE_COUNT", "x"), 10)
        except ValueError:
            count = 3 if plan == "prod" else 1
    if count < 1:
        raise ValidationError(
            f"invalid control plane machine count {count}: use an odd number of at least 1"
        )
    if count % 2 == 0:
        raise ValidationError(f"The number of control plane machines should be an odd number but provided {count}")
    return count


def _worker_pools(config: FlatConfig, plan: str, flag_value: int) -> list[PoolSpec]:
    """Worker pools as TKG lays them out: md-0, or md-0..md-2 for the prod plan."""
    total = flag_value
    if total == 0:
        # Like TKG, a non-integer WORKER_MACHINE_COUNT silently falls back to the plan default.
        try:
            total = int(config.get_or("WORKER_MACHINE_COUNT", "x"), 10)
        except ValueError:
            total = 3 if plan == "prod" else 1
    if total < 0:
        raise ValidationError("invalid WorkerMachineCount: use a number greater than or equal to 0")

    fixed = [config.get(f"WORKER_MACHINE_COUNT_{index}") for index in range(3)]
    if plan == "prod":
        if all(value is not None for value in fixed):
            try:
                counts = [int(value, 10) for value in fixed]  # type: ignore[arg-type]
            except ValueError:
                raise ValidationError(
                    "failed to parse WORKER_MACHINE_COUNT_0, _1 and _2 as integers"
                ) from None
        else:
            counts = [total // 3] * 3
            for index in range(total % 3):
                counts[index] += 1
        if sum(counts) < 3:
            raise ValidationError("prod plan requires at least 3 workers")
        return [
            PoolSpec(f"md-{index}", counts[index], config.get(f"VSPHERE_AZ_{index}")) for index in range(3)
        ]

    if fixed[0] is not None:
        try:
            total = int(fixed[0], 10)
        except ValueError:
            raise ValidationError(f"failed to parse WORKER_MACHINE_COUNT_0 as an integer: {fixed[0]!r}") from None
    return [PoolSpec("md-0", total, config.get("VSPHERE_AZ_0"))]


def _check_required(config: FlatConfig) -> None:
    missing = [name for name in REQUIRED_VSPHERE_VARIABLES if not config.is_set(name)]
    if missing:
        raise ValidationError(
            "workload cluster configuration validation failed: missing configuration variables: "
            + ", ".join(missing)
        )
    if not config.is_set("VSPHERE_DATASTORE") and not config.is_set("VSPHERE_STORAGE_POLICY_ID"):
        raise ValidationError(
            "Neither VSPHERE_DATASTORE nor VSPHERE_STORAGE_POLICY_ID is set; set at least one of them"
        )


def _check_rollout_and_health(config: FlatConfig) -> tuple[str, dict[str, object]]:
    strategy = config.get_or("WORKER_ROLLOUT_STRATEGY", "RollingUpdate")
    if strategy not in _ROLLOUT_STRATEGIES:
        raise ValidationError(
            f"workload cluster configuration validation failed: invalid WORKER_ROLLOUT_STRATEGY "
            f"{strategy!r}; allowed values: {', '.join(_ROLLOUT_STRATEGIES)}"
        )

    health: dict[str, object] = {}
    for name in _DURATION_VARIABLES:
        text = config.get(name)
        if text is None:
            continue
        try:
            parse_go_duration(text)
        except GoDurationError as error:
            raise ValidationError(
                f"workload cluster configuration validation failed: {name} {text!r} is not a "
                f"Go duration such as 40m or 1h30m ({error})"
            ) from None
        health[name] = text
    for name in ("MHC_MAX_UNHEALTHY_CONTROL_PLANE", "MHC_MAX_UNHEALTHY_WORKER_NODE"):
        text = config.get(name)
        if text is None:
            continue
        if not _MAX_UNHEALTHY.match(text):
            raise ValidationError(
                f"workload cluster configuration validation failed: {name} {text!r} must be "
                "a count or a percentage such as 100%"
            )
        health[name] = text
    for name in ("ENABLE_MHC", "ENABLE_MHC_CONTROL_PLANE", "ENABLE_MHC_WORKER_NODE"):
        if config.is_set(name):
            health[name] = config.truthy(name)
    return strategy, health


def build_cluster_spec(
    config: FlatConfig,
    name_argument: str | None,
    namespace_flag: str | None,
    tkr_flag: str | None,
    control_plane_count_flag: int = 0,
    worker_count_flag: int = 0,
) -> ClusterSpec:
    """Validate the configuration like `tanzu cluster create` and return the cluster to build."""
    name = name_argument or config.get("CLUSTER_NAME")
    if not name:
        raise ValidationError("cluster name is required, please provide cluster name")
    validate_cluster_name(name)
    namespace = namespace_flag or config.get("NAMESPACE") or "default"
    validate_namespace(namespace)
    tkr = resolve_tkr(tkr_flag)

    plan = _plan(config)
    control_plane_count = _control_plane_count(config, plan, control_plane_count_flag)
    pools = _worker_pools(config, plan, worker_count_flag)
    _check_required(config)

    avi_ha = config.truthy("AVI_CONTROL_PLANE_HA_PROVIDER")
    endpoint = config.get("VSPHERE_CONTROL_PLANE_ENDPOINT")
    if endpoint is None and not avi_ha:
        raise ValidationError("'VSPHERE_CONTROL_PLANE_ENDPOINT' config variable is required for infrastructure provider vsphere")

    # TKG evaluates the control-plane variables before the worker ones.
    ignore_allow_list = config.truthy("VSPHERE_IGNORE_PCI_DEVICES_ALLOW_LIST")
    control_plane = _machine_spec(config, "CONTROL_PLANE", ignore_allow_list)
    worker = _machine_spec(config, "WORKER", ignore_allow_list)
    strategy, health = _check_rollout_and_health(config)

    vsphere = VSphereTarget(
        server=config.get("VSPHERE_SERVER") or "",
        insecure=config.truthy("VSPHERE_INSECURE"),
        thumbprint=config.get("VSPHERE_TLS_THUMBPRINT"),
        datacenter=config.get("VSPHERE_DATACENTER") or "",
        folder=config.get("VSPHERE_FOLDER") or "",
        resource_pool=config.get("VSPHERE_RESOURCE_POOL") or "",
        datastore=config.get("VSPHERE_DATASTORE"),
        storage_policy_id=config.get("VSPHERE_STORAGE_POLICY_ID"),
        network=config.get_or("VSPHERE_NETWORK", "VM Network"),
        template=config.get("VSPHERE_TEMPLATE"),
        clone_mode=config.get_or("VSPHERE_CLONE_MODE", "fullClone"),
    )
    ntp = config.get("NTP_SERVERS")
    return ClusterSpec(
        name=name,
        namespace=namespace,
        plan=plan,
        tkr=tkr,
        control_plane_count=control_plane_count,
        pools=pools,
        control_plane=control_plane,
        worker=worker,
        control_plane_endpoint=endpoint,
        avi_control_plane_ha=avi_ha,
        vsphere=vsphere,
        ssh_authorized_key=config.get("VSPHERE_SSH_AUTHORIZED_KEY") or "",
        # NOTE: TKG picks the OS from the TKR when OS_NAME is unset; photon 3 is assumed here.
        os_name=config.get_or("OS_NAME", "photon"),
        os_version=config.get_or("OS_VERSION", "3"),
        os_arch=config.get_or("OS_ARCH", "amd64"),
        cluster_cidr=config.get_or("CLUSTER_CIDR", "100.96.0.0/11"),
        service_cidr=config.get_or("SERVICE_CIDR", "100.64.0.0/13"),
        cni=config.get_or("CNI", "antrea"),
        worker_rollout_strategy=strategy,
        machine_health_check=health,
        ntp_servers=[server for server in (ntp or "").replace(" ", "").split(",") if server],
    )


def read_credentials(config: FlatConfig) -> VSphereCredentials:
    """Return the vCenter login of the configuration, decoding an <encoded:...> password."""
    username = config.get("VSPHERE_USERNAME")
    password = config.get("VSPHERE_PASSWORD")
    if username is None or password is None:
        raise ValidationError("missing configuration variables: VSPHERE_USERNAME, VSPHERE_PASSWORD")
    return VSphereCredentials(username, decode_password(password))
