import pytest

from components import config
from tests.unit.sites import site_dict


def parse(**overrides):
    return config.parse_site_config(site_dict(**overrides))


def test_base_site_valid():
    site = parse()
    assert site.cluster.hardware_version == "vmx-17"
    assert site.gpu.worker_pairs() == [(0x10DE, 0x20B5)]


@pytest.mark.parametrize(
    ("overrides", "key", "fragment"),
    [
        ({"cluster": {"hardwareVersion": "17"}}, "tkg-gpu:cluster.hardwareVersion", "vmx-<N>"),
        ({"cluster": {"name": "GPU_WC"}}, "tkg-gpu:cluster.name", "DNS label"),
        ({"gpu": {"model": "A200"}}, "tkg-gpu:gpu.model", "unknown GPU model"),
        ({"gpu": {"workerDevices": ["0x10DE:0x20B5"]}}, "tkg-gpu:gpu", "exactly one"),
        ({"gpu": {"model": None, "workerDevices": ["10de:20b5"]}}, "tkg-gpu:gpu.workerDevices", "0xVVVV:0xDDDD"),
        ({"gpu": {"model": None, "vendorDevice": "0x10DE-0x20B5"}}, "tkg-gpu:gpu.vendorDevice", "0xVVVV:0xDDDD"),
        ({"edge": {"nodeStartupTimeout": "3600"}}, "tkg-gpu:edge.nodeStartupTimeout", "Go duration"),
        ({"edge": {"nodeStartupTimeout": 60}}, "tkg-gpu:edge.nodeStartupTimeout", "bare number is not accepted"),
        ({"tanzu": {"createTimeout": 45}}, "tkg-gpu:tanzu.createTimeout", "bare number is not accepted"),
        ({"vcenter": {"server": "https://vc.example.com/sdk"}}, "tkg-gpu:vcenter.server", "without a scheme"),
        ({"vcenter": {"insecure": False}}, "tkg-gpu:vcenter", "thumbprint"),
        ({"hosts": []}, "tkg-gpu:hosts", "at least 1"),
        ({"hosts": ["a", "a"]}, "tkg-gpu:hosts", "more than once"),
        ({"cluster": {"mmioSizeGb": 300}}, "tkg-gpu:cluster.mmioSizeGb", "power of two"),
        ({"cluster": {"rolloutStrategy": "Recreate"}}, "tkg-gpu:cluster.rolloutStrategy", "RollingUpdate"),
        ({"cluster": {"workerCount": 0}}, "tkg-gpu:cluster.workerCount", "greater than or equal to 1"),
        ({"site": {"kind": "branch"}}, "tkg-gpu:site.kind", "edge"),
        ({"cluster": {"wokerCount": 2}}, "tkg-gpu:cluster.wokerCount", "unknown setting"),
        ({"cluster": {"plan": "prod", "workerCount": 2}}, "tkg-gpu:cluster", "prod plan needs"),
        ({"edge": {"nodeStartupTimeout": "10s"}}, "tkg-gpu:edge.nodeStartupTimeout", "at least 30s"),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_invalid_setting_named(overrides, key, fragment):
    """Each bad value fails validation with its key and an explanation."""
    with pytest.raises(config.ConfigError) as caught:
        parse(**overrides)

    message = str(caught.value)
    assert f"{key}:" in message
    assert fragment in message


def test_missing_section_named():
    raw = site_dict()
    del raw["cluster"]
    with pytest.raises(config.ConfigError, match="tkg-gpu:cluster: missing required setting"):
        config.parse_site_config(raw)


def test_edge_defaults_applied():
    site = parse(site={"kind": "edge"})
    assert site.edge_timeouts() == {"node_startup_timeout": "60m", "mhc_false_status_timeout": "40m"}


def test_edge_explicit_values_win():
    site = parse(site={"kind": "edge"}, edge={"nodeStartupTimeout": "90m"})
    assert site.edge_timeouts()["node_startup_timeout"] == "90m"


def test_datacenter_has_no_timeouts_by_default():
    assert parse().edge_timeouts() == {}


def test_duration_seconds():
    assert config.duration_seconds("1h30m") == 5400
    with pytest.raises(ValueError, match="not a Go duration"):
        config.duration_seconds("90")


def test_unknown_key_value_not_shown():
    """An unknown key may hold a password, so its value never appears in the error."""
    with pytest.raises(config.ConfigError) as caught:
        parse(vcenter={"password": "hunter2-in-plain-text"})

    assert "tkg-gpu:vcenter.password: unknown setting" in str(caught.value)
    assert "hunter2-in-plain-text" not in str(caught.value)


def test_zero_timeout_allowed():
    assert parse(edge={"nodeStartupTimeout": "0s"}).edge.node_startup_timeout == "0s"
