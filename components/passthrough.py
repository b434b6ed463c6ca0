"""PCI passthrough of one GPU on one ESXi host, as a Pulumi dynamic resource, and the per-host component."""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi import dynamic

from components import gpu_catalog, vsphere
from components.i18n import _

# Bumped whenever the provider code changes, so the engine stores the new pickled provider (an input
# change forces an update, and without one refresh keeps running the provider pickled at the last update).
PROVIDER_VERSION = "2"

_OUTPUT_KEYS = (
    "host_moid",
    "vendor_id",
    "device_id",
    "device_name",
    "model",
    "passthru_enabled",
    "passthru_active",
    "reboot_required",
)


def _device_outputs(device: vsphere.PciDeviceState) -> dict[str, Any]:
    model = gpu_catalog.model_for_device(device.vendor_id, device.device_id)
    return {
        "vendor_id": gpu_catalog.format_pci_id(device.vendor_id),
        "device_id": gpu_catalog.format_pci_id(device.device_id),
        "device_name": model.name if model else (device.device_name or "unknown"),
        "model": model.key if model else "",
        "passthru_enabled": device.enabled,
        "passthru_active": device.active,
        "reboot_required": device.reboot_required,
    }


class PassthroughDeviceProvider(dynamic.ResourceProvider):
    """CRUD for the passthrough flag of one device; connects to vCenter inside every call.

    Inputs: ``host``, ``pci_address``, ``enabled`` (desired), ``connection`` (secret: server,
    username, password, insecure, thumbprint) and ``provider_version``. ``original_enabled`` records the
    flag found before the first change, so delete can restore it.
    """

    def _apply(
        self, props: dict[str, Any], enabled: bool
    ) -> tuple[vsphere.PciDeviceState, vsphere.PciDeviceState, str]:
        """Set the flag when it differs from the host's; return the device state before and after, and the host's ID."""
        connection = vsphere.Connection.from_mapping(props["connection"])
        with vsphere.connect(connection) as service_instance:
            host = vsphere.read_host(service_instance, props["host"], props.get("host_moid"))
            device = host.device(props["pci_address"])
            if device is None:
                raise vsphere.NotFoundError(
                    _("PCI device {device} not found on ESXi host {host}").format(
                        device=props["pci_address"], host=props["host"]
                    )
                )

            if not device.capable:
                raise vsphere.VSphereError(
                    _("PCI device {device} on ESXi host {host} is not passthrough-capable; check VT-d/IOMMU in the host BIOS").format(
                        device=props["pci_address"], host=props["host"]
                    )
                )

            before = device
            if device.enabled != enabled or device.active != enabled:
                vsphere.set_passthrough(host, props["pci_address"], enabled)
                host = vsphere.read_host(service_instance, props["host"], host.ref._moId)
                device = host.device(props["pci_address"])
                assert device is not None, "the device was present one call earlier"

        return before, device, host.ref._moId

    def _result(
        self, props: dict[str, Any], device: vsphere.PciDeviceState, original: bool, host_moid: str
    ) -> dict[str, Any]:
        return {
            "host": props["host"],
            "host_moid": host_moid,
            "pci_address": props["pci_address"],
            "enabled": props["enabled"],
            "connection": props["connection"],
            "provider_version": props.get("provider_version", ""),
            "original_enabled": original,
            **_device_outputs(device),
        }

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        before, device, host_moid = self._apply(props, bool(props["enabled"]))

        return dynamic.CreateResult(
            f"{props['host']}/{props['pci_address']}", self._result(props, device, before.enabled, host_moid)
        )

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        """Compare the desired flag with the state last read from the host, not only with old inputs."""
        replaces = [key for key in ("host", "pci_address") if olds.get(key) != news.get(key)]
        desired = bool(news.get("enabled"))
        drifted = olds.get("passthru_enabled") != desired or olds.get("passthru_active") != desired
        changed = (
            drifted
            or olds.get("enabled") != news.get("enabled")
            or olds.get("provider_version") != news.get("provider_version")
            or olds.get("connection") != news.get("connection")
        )

        return dynamic.DiffResult(changes=bool(replaces) or changed, replaces=replaces or None)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        _before, device, host_moid = self._apply({**news, "host_moid": olds.get("host_moid")}, bool(news["enabled"]))
        original = olds.get("original_enabled", False)

        return dynamic.UpdateResult(self._result(news, device, bool(original), host_moid))

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        connection = vsphere.Connection.from_mapping(props["connection"])
        try:
            with vsphere.connect(connection) as service_instance:
                host = vsphere.read_host(service_instance, props["host"], props.get("host_moid"))
        except vsphere.NotFoundError:
            return dynamic.ReadResult("", {})

        device = host.device(props["pci_address"])
        if device is None:
            return dynamic.ReadResult("", {})

        outs = {**props, "host_moid": host.ref._moId, **_device_outputs(device)}
        inputs = {key: props[key] for key in ("host", "pci_address", "connection", "provider_version") if key in props}
        inputs["enabled"] = props.get("enabled", True)

        return dynamic.ReadResult(id_, outs, inputs)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Restore the passthrough flag found before the first change; a device already gone is left alone."""
        try:
            self._apply(props, bool(props.get("original_enabled", False)))
        except vsphere.NotFoundError:
            pass


class PassthroughDevice(dynamic.Resource, module="tkggpu", name="PassthroughDevice"):
    """Passthrough of one PCI device on one ESXi host; its ID is ``<host>/<pci address>``."""

    host: pulumi.Output[str]
    pci_address: pulumi.Output[str]
    vendor_id: pulumi.Output[str]
    device_id: pulumi.Output[str]
    device_name: pulumi.Output[str]
    model: pulumi.Output[str]
    passthru_enabled: pulumi.Output[bool]
    passthru_active: pulumi.Output[bool]
    reboot_required: pulumi.Output[bool]
    original_enabled: pulumi.Output[bool]

    def __init__(
        self,
        resource_name: str,
        *,
        host: str,
        pci_address: str,
        connection: pulumi.Input[dict[str, Any]],
        enabled: bool = True,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "host": host,
            "pci_address": pci_address,
            "enabled": enabled,
            "connection": connection,
            "provider_version": PROVIDER_VERSION,
            "original_enabled": None,
            **{key: None for key in _OUTPUT_KEYS},
        }
        secret_outputs = pulumi.ResourceOptions(additional_secret_outputs=["connection"])
        super().__init__(
            PassthroughDeviceProvider(), resource_name, props, pulumi.ResourceOptions.merge(secret_outputs, opts)
        )


class GpuPassthroughHost(pulumi.ComponentResource):
    """One ESXi host of the site with passthrough enabled on each of its selected GPUs."""

    devices: pulumi.Output[list[dict[str, Any]]]

    def __init__(
        self,
        name: str,
        *,
        host: str,
        pci_addresses: list[str],
        connection: pulumi.Input[dict[str, Any]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("tkg-gpu:index:GpuPassthroughHost", name, None, opts)

        self.host_name = host
        self.device_resources = [
            PassthroughDevice(
                f"{name}-{_address_suffix(address)}",
                host=host,
                pci_address=address,
                connection=connection,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for address in pci_addresses
        ]
        self.devices = pulumi.Output.all(*[_summary(device) for device in self.device_resources])
        self.register_outputs({"devices": self.devices})

    def passthrough_states(self) -> pulumi.Output[list[dict[str, Any]]]:
        """Return ``host``, ``pci_address`` and ``active`` of each device, for checks downstream."""
        return self.devices.apply(
            lambda devices: [
                {"host": self.host_name, "pci_address": device["pci_address"], "active": device["passthru_active"]}
                for device in devices
            ]
        )


def _address_suffix(pci_address: str) -> str:
    """Turn ``0000:3b:00.0`` into ``0000-3b-00-0`` for a logical name that stays stable across runs."""
    return pci_address.replace(":", "-").replace(".", "-").lower()


def _summary(device: PassthroughDevice) -> pulumi.Output[dict[str, Any]]:
    return pulumi.Output.all(
        device.pci_address,
        device.vendor_id,
        device.device_id,
        device.device_name,
        device.passthru_enabled,
        device.passthru_active,
        device.reboot_required,
    ).apply(
        lambda values: dict(
            zip(
                ("pci_address", "vendor_id", "device_id", "device_name", "passthru_enabled", "passthru_active", "reboot_required"),
                values,
            )
        )
    )
