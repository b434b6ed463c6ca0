"""End-to-end create, scale and delete against a vCenter simulator on 127.0.0.1.

Without TANZU_DOUBLE_TEST_VSPHERE_SERVER, the module starts its own vcsim-gpu through the lab API:
one host with two T4s, both passthrough-enabled, and a random password. `make test` puts vcsim-gpu
on PATH, and the tests fail when it is missing.

TANZU_DOUBLE_TEST_VSPHERE_SERVER (host:port on the loopback address) selects an external
simulator instead. Only with it, the other TANZU_DOUBLE_TEST_* variables below set its login and
inventory names, and the defaults are the lab's vcsim-gpu names. The host of the template must
have exactly TANZU_DOUBLE_TEST_FREE_DEVICES (default 2) free, passthrough-active devices of
TANZU_DOUBLE_TEST_PCI_DEVICES. Other hosts do not count, because vcsim-gpu keeps a clone without
PCI devices on the template's host, and the double adds the devices after the clone, as CAPV does.
`vcsim-gpu --hosts 1 --gpus T4:2` with both T4s passthrough-enabled fits the defaults.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import ssl

import pytest
import yaml

EXTERNAL_SERVER = os.environ.get("TANZU_DOUBLE_TEST_VSPHERE_SERVER", "")

if EXTERNAL_SERVER and not EXTERNAL_SERVER.startswith(("127.0.0.1:", "localhost:", "[::1]:")):
    raise RuntimeError("TANZU_DOUBLE_TEST_VSPHERE_SERVER must be a simulator on the loopback address")


def setting(name: str, default: str) -> str:
    """Return TANZU_DOUBLE_TEST_<name> for an external simulator, and the vcsim-gpu default otherwise."""
    if not EXTERNAL_SERVER:
        return default
    return os.environ.get(f"TANZU_DOUBLE_TEST_{name}", default)


DATACENTER = setting("DATACENTER", "dc-lab")
PCI_DEVICES = setting("PCI_DEVICES", "0x10DE:0x1EB8")
FREE_DEVICES = int(setting("FREE_DEVICES", "2"))

# The simulator this module starts: one host whose two T4s (0x10DE:0x1EB8) fit the defaults above.
LAB_HOSTS = 1
LAB_GPU_COUNT = 2
LAB_GPUS = f"T4:{LAB_GPU_COUNT}"
LAB_GPU_DEVICE_ID = 0x1EB8


@dataclasses.dataclass(frozen=True)
class Simulator:
    """Address and login of the vCenter simulator that the tests run against."""

    server: str
    username: str
    password: str = dataclasses.field(repr=False)

    @property
    def credentials(self) -> dict[str, str]:
        """Environment that lets the double log in to vCenter for scale and delete."""
        return {
            "TANZU_DOUBLE_VSPHERE_USERNAME": self.username,
            "TANZU_DOUBLE_VSPHERE_PASSWORD": self.password,
            "TANZU_DOUBLE_DELETE_DELAY_SECONDS": "0",
        }


def enable_gpu_passthrough(simulator: Simulator) -> None:
    """Enable passthrough on every T4 of the lab and check that the hosts report it active."""
    from components import vsphere

    connection = vsphere.Connection(
        server=simulator.server, username=simulator.username, password=simulator.password, insecure=True
    )
    with vsphere.connect(connection) as service_instance:
        for host in vsphere.read_hosts(service_instance).values():
            for device in host.devices:
                if device.is_gpu and device.device_id == LAB_GPU_DEVICE_ID:
                    vsphere.set_passthrough(host, device.pci_address, True)

        flags = [
            (device.enabled, device.active)
            for host in vsphere.read_hosts(service_instance).values()
            for device in host.devices
            if device.is_gpu and device.device_id == LAB_GPU_DEVICE_ID
        ]
    assert flags == [(True, True)] * LAB_GPU_COUNT, f"T4 passthrough (enabled, active) after the change: {flags}"


@pytest.fixture(scope="module")
def vcenter(tmp_path_factory):
    """Yield the external simulator if one is set, else start vcsim-gpu and stop it after the module."""
    if EXTERNAL_SERVER:
        yield Simulator(
            EXTERNAL_SERVER,
            setting("USERNAME", "administrator@vsphere.local"),
            setting("PASSWORD", "lab-password"),
        )
        return

    if shutil.which("vcsim-gpu") is None:
        pytest.fail(
            "vcsim-gpu not found on PATH; run these tests through `make test`, which builds it and puts it on PATH"
            " (or set TANZU_DOUBLE_TEST_VSPHERE_SERVER to a simulator on 127.0.0.1)"
        )

    from lab.lab import Lab, LabSettings

    password = secrets.token_hex(16)
    # The Kubernetes tests below start their own control plane (conftest.kube_plane).
    settings = LabSettings(port=0, hosts=LAB_HOSTS, gpus=LAB_GPUS, kubernetes=False)
    lab = Lab(tmp_path_factory.mktemp("vcenter-lab"), password, settings).start()
    try:
        simulator = Simulator(lab.server, settings.username, password)
        enable_gpu_passthrough(simulator)
        yield simulator
    finally:
        # Lab.stop signals the simulator by the process id of the child it started.
        lab.stop()


@pytest.fixture
def gpu_config(tmp_path, vcenter):
    """Write the cluster configuration (mode 0600) and remove it afterwards, because it contains the password."""
    config = {
        "CLUSTER_NAME": "e2e-gpu",
        "CLUSTER_PLAN": "dev",
        "VSPHERE_SERVER": vcenter.server,
        "VSPHERE_USERNAME": vcenter.username,
        "VSPHERE_PASSWORD": vcenter.password,
        "VSPHERE_INSECURE": True,
        "VSPHERE_DATACENTER": DATACENTER,
        "VSPHERE_FOLDER": setting("FOLDER", f"/{DATACENTER}/vm"),
        "VSPHERE_RESOURCE_POOL": setting("RESOURCE_POOL", f"/{DATACENTER}/host/gpu-cluster/Resources"),
        "VSPHERE_DATASTORE": setting("DATASTORE", "datastore1"),
        "VSPHERE_NETWORK": setting("NETWORK", "VM Network"),
        "VSPHERE_TEMPLATE": setting("TEMPLATE", "tkg-ubuntu-2204-gpu"),
        "VSPHERE_SSH_AUTHORIZED_KEY": "ssh-ed25519 AAAAC3Nza e2e@lab",
        "VSPHERE_CONTROL_PLANE_ENDPOINT": "127.0.0.1",
        "WORKER_MACHINE_COUNT": 1,
        "VSPHERE_WORKER_PCI_DEVICES": PCI_DEVICES,
        "VSPHERE_IGNORE_PCI_DEVICES_ALLOW_LIST": True,
        "VSPHERE_WORKER_HARDWARE_VERSION": "vmx-19",
        "VSPHERE_WORKER_MEM_MIB": 8192,
        "VSPHERE_WORKER_CUSTOM_VMX_KEYS": "pciPassthru.use64bitMMIO=TRUE,pciPassthru.64bitMMIOSizeGB=64",
    }
    path = tmp_path / "e2e.yaml"
    path.touch(mode=0o600)
    os.chmod(path, 0o600)
    path.write_text(yaml.safe_dump(config))
    yield path
    path.unlink(missing_ok=True)


def vm_facts(vcenter: Simulator, name_prefix: str) -> dict[str, dict]:
    from pyVim.connect import Connect, Disconnect
    from pyVmomi import vim

    host, port = vcenter.server.rsplit(":", 1)
    service_instance = Connect(
        host=host.strip("[]"), port=int(port), user=vcenter.username, pwd=vcenter.password,
        sslContext=ssl._create_unverified_context(), version="vim.version.v8_0_2_0",
    )
    try:
        view = service_instance.content.viewManager.CreateContainerView(
            service_instance.content.rootFolder, [vim.VirtualMachine], True
        )
        facts = {}
        for vm in view.view:
            if not vm.name.startswith(name_prefix):
                continue
            config = vm.config
            facts[vm.name] = {
                "version": config.version,
                "memoryMB": config.hardware.memoryMB,
                "locked": config.memoryReservationLockedToMax,
                "extra": {option.key: option.value for option in config.extraConfig or []},
                "pci": [
                    (type(device.backing).__name__, [(a.vendorId, a.deviceId) for a in device.backing.allowedDevice])
                    for device in config.hardware.device
                    if isinstance(device, vim.vm.device.VirtualPCIPassthrough)
                ],
            }
        view.DestroyView()
        return facts
    finally:
        Disconnect(service_instance)


def test_create_and_delete_gpu_cluster(tanzu, gpu_config, vcenter):
    credentials = vcenter.credentials
    created = tanzu("cluster", "create", "-f", str(gpu_config))
    assert created.returncode == 0, created.stderr
    assert "Workload cluster 'e2e-gpu' created" in created.stderr
    assert vcenter.password not in created.stderr + created.stdout

    [info] = json.loads(tanzu("cluster", "list", "-o", "json").stdout)
    assert (info["status"], info["controlplane"], info["workers"]) == ("running", "1/1", "1/1")

    facts = vm_facts(vcenter, "e2e-gpu-md-0-")
    [worker] = facts.values()
    vendor, device = (int(part, 16) for part in PCI_DEVICES.split(",")[0].split(":"))
    assert worker["version"] == "vmx-19"
    assert worker["memoryMB"] == 8192
    assert worker["locked"] is True
    assert worker["extra"]["pciPassthru.64bitMMIOSizeGB"] == "64"
    assert worker["pci"] == [("vim.vm.device.VirtualPCIPassthrough.DynamicBackingInfo", [(vendor, device)])]

    assert tanzu("cluster", "delete", "e2e-gpu", "-y", env=credentials).returncode == 0
    assert tanzu("cluster", "list", "-o", "json", env=credentials).stdout == "[]"
    assert vm_facts(vcenter, "e2e-gpu-") == {}


def listed_cluster(tanzu, vcenter: Simulator) -> dict:
    result = tanzu("cluster", "list", "-o", "json", env=vcenter.credentials)
    assert result.returncode == 0, result.stderr
    [info] = json.loads(result.stdout)
    return info


def test_scale_gpu_workers(tanzu, gpu_config, vcenter):
    """Scale-up clones workers like create, a worker without a free GPU fails the scale, scale-down queues VMs."""
    created = tanzu("cluster", "create", "-f", str(gpu_config))
    assert created.returncode == 0, created.stderr
    try:
        [first_name] = vm_facts(vcenter, "e2e-gpu-md-0-")

        scaled = tanzu("cluster", "scale", "e2e-gpu", "-w", str(FREE_DEVICES), env=vcenter.credentials)
        assert scaled.returncode == 0, scaled.stderr
        assert scaled.stderr.rstrip("\n").endswith("Workload cluster 'e2e-gpu' is being scaled")
        assert vcenter.password not in scaled.stderr + scaled.stdout
        info = listed_cluster(tanzu, vcenter)
        assert (info["status"], info["workers"]) == ("running", f"{FREE_DEVICES}/{FREE_DEVICES}")

        facts = vm_facts(vcenter, "e2e-gpu-md-0-")
        assert len(facts) == FREE_DEVICES
        first = facts.pop(first_name)
        for name, added in facts.items():
            assert added == first, name
        assert first["version"] == "vmx-19"
        assert first["locked"] is True

        # One worker more than there are free GPUs: vCenter refuses its power-on.
        too_many = tanzu("cluster", "scale", "e2e-gpu", "-w", str(FREE_DEVICES + 1), env=vcenter.credentials)
        assert too_many.returncode == 1
        assert "no free passthrough-active PCI device" in too_many.stderr
        assert "1 of 1 new machines failed" in too_many.stderr
        info = listed_cluster(tanzu, vcenter)
        assert (info["status"], info["workers"]) == ("updating", f"{FREE_DEVICES}/{FREE_DEVICES + 1}")
        assert len(vm_facts(vcenter, "e2e-gpu-md-0-")) == FREE_DEVICES + 1

        # Scaling down drops the failed machine first; the next invocation destroys its VM.
        down = tanzu("cluster", "scale", "e2e-gpu", "-w", str(FREE_DEVICES - 1), env=vcenter.credentials)
        assert down.returncode == 0, down.stderr
        info = listed_cluster(tanzu, vcenter)
        assert (info["status"], info["workers"]) == ("running", f"{FREE_DEVICES - 1}/{FREE_DEVICES - 1}")
        assert len(vm_facts(vcenter, "e2e-gpu-md-0-")) == FREE_DEVICES - 1
    finally:
        deleted = tanzu("cluster", "delete", "e2e-gpu", "-y", env=vcenter.credentials)
        assert deleted.returncode == 0, deleted.stderr
        assert tanzu("cluster", "list", "-o", "json", env=vcenter.credentials).stdout == "[]"
    assert vm_facts(vcenter, "e2e-gpu-") == {}


def test_gpu_cluster_in_kubernetes_planes(tanzu, gpu_config, vcenter, plane_env, kube_plane, tmp_path):
    """Create, scale and delete with the planes set: CAPI objects, kubeconfig Secret and GPU Nodes follow."""
    import kubernetes.client

    env = {**vcenter.credentials, **plane_env}
    created = tanzu("cluster", "create", "e2e-planes", "-f", str(gpu_config), env=env)
    assert created.returncode == 0, created.stderr
    try:
        with kube_plane.api_client() as client:
            core = kubernetes.client.CoreV1Api(client)
            custom = kubernetes.client.CustomObjectsApi(client)

            def gpu_workers() -> dict[str, str]:
                return {
                    node.metadata.name: node.status.allocatable.get("nvidia.com/gpu")
                    for node in core.list_node().items
                    if node.metadata.name.startswith("e2e-planes-md-0-")
                }

            cluster = custom.get_namespaced_custom_object("cluster.x-k8s.io", "v1beta1", "default", "clusters", "e2e-planes")
            assert cluster["status"]["phase"] == "Provisioned"
            assert core.read_namespaced_secret("e2e-planes-kubeconfig", "default").type == "cluster.x-k8s.io/secret"
            assert set(gpu_workers()) == set(vm_facts(vcenter, "e2e-planes-md-0-"))
            assert list(gpu_workers().values()) == ["1"]
            [control_plane] = [node for node in core.list_node().items if node.metadata.name.startswith("e2e-planes-control-plane-")]
            assert control_plane.spec.taints[0].key == "node-role.kubernetes.io/control-plane"

            exported = tmp_path / "e2e-planes.kubeconfig"
            fetched = tanzu("cluster", "kubeconfig", "get", "e2e-planes", "--admin", "--export-file", str(exported), env=env)
            assert fetched.returncode == 0, fetched.stderr
            assert yaml.safe_load(exported.read_text())["clusters"][0]["cluster"]["server"] == kube_plane.server

            scaled = tanzu("cluster", "scale", "e2e-planes", "-w", str(FREE_DEVICES), env=env)
            assert scaled.returncode == 0, scaled.stderr
            assert list(gpu_workers().values()) == ["1"] * FREE_DEVICES
            deployments = custom.list_namespaced_custom_object(
                "cluster.x-k8s.io", "v1beta1", "default", "machinedeployments",
                label_selector="cluster.x-k8s.io/cluster-name=e2e-planes",
            )["items"]
            assert [item["spec"]["replicas"] for item in deployments] == [FREE_DEVICES]
    finally:
        deleted = tanzu("cluster", "delete", "e2e-planes", "-y", env=env)
        assert deleted.returncode == 0, deleted.stderr
        assert tanzu("cluster", "list", "-o", "json", env=env).stdout == "[]"
    assert vm_facts(vcenter, "e2e-planes-") == {}
    with kube_plane.api_client() as client:
        names = [node.metadata.name for node in kubernetes.client.CoreV1Api(client).list_node().items]
        assert [name for name in names if name.startswith("e2e-planes-")] == []
        clusters = kubernetes.client.CustomObjectsApi(client).list_namespaced_custom_object(
            "cluster.x-k8s.io", "v1beta1", "default", "clusters"
        )["items"]
        assert "e2e-planes" not in [item["metadata"]["name"] for item in clusters]
