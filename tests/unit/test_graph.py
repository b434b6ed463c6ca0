"""Graph wiring under Pulumi mocks: components, children and dependencies, without vCenter or tanzu."""

from __future__ import annotations

import pulumi

from components import config, gpu_profile
from tests.unit.sites import inventory as hosts_inventory
from tests.unit.sites import site_dict, template


def build_stack():
    from components.site import SiteInventory
    from components.site_stack import declare_site

    site = config.parse_site_config(site_dict())
    inventory = SiteInventory(hosts=hosts_inventory(), template=template())
    profile = gpu_profile.build_profile(site, inventory.hosts)
    connection = pulumi.Output.secret({"server": "127.0.0.1:1", "username": "u", "password": "p", "insecure": True})
    resources = declare_site(site, inventory, profile, connection)

    return list(resources.hosts.values()), resources.cluster


@pulumi.runtime.test
def test_one_device_resource_per_gpu(mocks):
    hosts, _cluster = build_stack()

    def check(_):
        devices = [name for name, item in mocks.resources.items() if item["type"].endswith("PassthroughDevice")]
        assert sorted(devices) == [
            "esxi-01.lab.local-0000-3b-00-0",
            "esxi-01.lab.local-0000-3c-00-0",
            "esxi-02.lab.local-0000-3b-00-0",
            "esxi-02.lab.local-0000-3c-00-0",
        ]

    return pulumi.Output.all(*[host.devices for host in hosts]).apply(check)


@pulumi.runtime.test
def test_cluster_config_carries_policy_inputs(mocks):
    _hosts, cluster = build_stack()

    def check(_):
        inputs = mocks.resources["gpu-wc-01-config"]["inputs"]
        assert inputs["worker"]["pci_devices"] == [{"vendor_id": 0x10DE, "device_id": 0x20B5}]
        assert inputs["worker"]["hardware_version"] == "vmx-17"
        assert inputs["ignore_pci_devices_allow_list"] is True
        assert len(inputs["passthrough"]) == 4
        assert all(device["active"] for device in inputs["passthrough"])
        assert inputs["site"]["max_hardware_version"] == 21
        assert inputs["site"]["template"]["firmware"] == "efi"
        assert inputs["worker"]["needs_64bit_mmio"] is True

    return cluster.variables.apply(check)


@pulumi.runtime.test
def test_cluster_gets_rendered_variables(mocks):
    _hosts, cluster = build_stack()

    def check(_):
        inputs = mocks.resources["gpu-wc-01-cluster"]["inputs"]
        assert inputs["variables"]["VSPHERE_WORKER_PCI_DEVICES"] == "0x10DE:0x20B5"
        assert "password" not in str(inputs["variables"]).lower()
        assert mocks.resources["gpu-wc-01-cluster"]["type"] == "pulumi-python:dynamic/tkggpu:TanzuCluster"

    return cluster.status.apply(check)
