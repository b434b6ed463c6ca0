"""The passthrough dynamic provider's CRUD against the vCenter simulator, without the Pulumi engine."""

from __future__ import annotations

import dill
import pytest

from components import vsphere
from components.passthrough import PassthroughDeviceProvider
from tests import labtools

ADDRESS = "0000:3b:00.0"


@pytest.fixture(scope="module")
def password():
    return labtools.sentinel_password()


@pytest.fixture(scope="module")
def lab(tmp_path_factory, password):
    started = labtools.start_lab(
        tmp_path_factory.mktemp("lab"), password, hosts=2, gpus="A100-PCIE-80GB:2", no_rebind=("esxi-02.lab.local",),
        kubernetes=False,
    )
    yield started
    started.stop()


def props(lab, password, host="esxi-01.lab.local", enabled=True):
    return {
        "host": host,
        "pci_address": ADDRESS,
        "enabled": enabled,
        "connection": {"server": lab.server, "username": lab.settings.username, "password": password, "insecure": True},
        "provider_version": "1",
    }


def test_provider_pickles_without_secrets():
    """The provider object carries no client or credential, so dill can store it in the state."""
    provider = PassthroughDeviceProvider()
    restored = dill.loads(dill.dumps(provider, recurse=True))
    assert isinstance(restored, PassthroughDeviceProvider)
    assert vars(provider) == {}


def test_create_read_delete(lab, password):
    provider = PassthroughDeviceProvider()
    created = provider.create(props(lab, password))
    assert created.id == f"esxi-01.lab.local/{ADDRESS}"
    assert created.outs["passthru_enabled"] is True
    assert created.outs["passthru_active"] is True
    assert created.outs["reboot_required"] is False
    assert created.outs["original_enabled"] is False
    assert created.outs["vendor_id"] == "0x10DE"
    assert created.outs["device_id"] == "0x20B5"
    assert created.outs["model"] == "A100-PCIE-80GB"

    read = provider.read(created.id, created.outs)
    assert read.id == created.id
    assert read.outs["passthru_active"] is True

    provider.delete(created.id, created.outs)
    assert labtools.gpu_flags(lab, password)[("esxi-01.lab.local", ADDRESS)] == (False, False)


def test_read_sees_manual_change_and_diff_repairs(lab, password):
    provider = PassthroughDeviceProvider()
    created = provider.create(props(lab, password))
    labtools.set_flag_directly(lab, password, "esxi-01.lab.local", ADDRESS, False)

    read = provider.read(created.id, created.outs)
    assert read.outs["passthru_enabled"] is False
    diff = provider.diff(created.id, read.outs, props(lab, password))
    assert diff.changes is True
    assert not diff.replaces

    updated = provider.update(created.id, read.outs, props(lab, password))
    assert updated.outs["passthru_active"] is True
    assert updated.outs["original_enabled"] is False
    provider.delete(created.id, updated.outs)


def test_reboot_pending_host(lab, password):
    """A host that cannot rebind reports enabled-but-not-active until it reboots."""
    provider = PassthroughDeviceProvider()
    created = provider.create(props(lab, password, host="esxi-02.lab.local"))
    assert created.outs["passthru_enabled"] is True
    assert created.outs["passthru_active"] is False
    assert created.outs["reboot_required"] is True

    lab.reboot_host("esxi-02.lab.local")
    read = provider.read(created.id, created.outs)
    assert read.outs["passthru_active"] is True
    assert read.outs["reboot_required"] is False


def test_unknown_device_error(lab, password):
    provider = PassthroughDeviceProvider()
    bad = {**props(lab, password), "pci_address": "0000:ff:00.0"}
    with pytest.raises(vsphere.NotFoundError, match="PCI device 0000:ff:00.0 not found on ESXi host esxi-01.lab.local"):
        provider.create(bad)


def test_wrong_password_error(lab, password):
    provider = PassthroughDeviceProvider()
    bad = props(lab, password)
    bad["connection"] = {**bad["connection"], "password": "wrong-password"}
    with pytest.raises(vsphere.VSphereError, match="vCenter login failed for user administrator@vsphere.local") as caught:
        provider.create(bad)
    assert "wrong-password" not in str(caught.value)


def test_read_of_deleted_host_reports_gone(lab, password):
    provider = PassthroughDeviceProvider()
    gone = {**props(lab, password, host="esxi-09.lab.local"), "passthru_enabled": True}
    assert provider.read("esxi-09.lab.local/0000:3b:00.0", gone).id == ""
