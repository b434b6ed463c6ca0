"""Reading a site costs a constant number of vCenter requests, however many hosts it has."""

from __future__ import annotations

import pytest

from components import vsphere
from tests import labtools


@pytest.mark.parametrize("hosts", [1, 32])
def test_site_read_round_trips(tmp_path, hosts):
    password = labtools.sentinel_password()
    lab = labtools.start_lab(tmp_path, password, hosts=hosts, gpus="A100-PCIE-80GB:2", kubernetes=False)
    try:
        with vsphere.connect(labtools.lab_connection(lab, password)) as service_instance:
            lab.reset_request_count()
            inventory = vsphere.read_hosts(service_instance)
            requests = lab.request_count()
    finally:
        lab.stop()

    assert len(inventory) == hosts
    assert sum(1 for host in inventory.values() for device in host.devices if device.is_gpu) == 2 * hosts
    # RetrieveServiceContent, CreateContainerView, RetrievePropertiesEx and DestroyView.
    assert requests == 4


@pytest.mark.parametrize("hosts", [1, 32])
def test_device_read_round_trips(tmp_path, hosts):
    """A device read looks up its own host only, so its cost does not grow with the site."""
    from components.passthrough import PassthroughDeviceProvider

    password = labtools.sentinel_password()
    lab = labtools.start_lab(tmp_path, password, hosts=hosts, gpus="A100-PCIE-80GB:2", kubernetes=False)
    props = {
        "host": f"esxi-{hosts:02d}.lab.local",
        "pci_address": "0000:3b:00.0",
        "enabled": True,
        "connection": {"server": lab.server, "username": lab.settings.username, "password": password, "insecure": True},
    }
    provider = PassthroughDeviceProvider()
    try:
        created = provider.create(props)
        lab.reset_request_count()
        read = provider.read(created.id, created.outs)
        requests = lab.request_count()
    finally:
        lab.stop()

    assert read.id == f"{props['host']}/0000:3b:00.0"
    assert read.outs["device_id"] == "0x20B5"
    # Login (2), RetrieveServiceContent, RetrievePropertiesEx on the stored host ID, logout (2).
    assert requests == 6
