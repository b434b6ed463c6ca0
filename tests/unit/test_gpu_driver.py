"""Driver version and kernel module type chosen for the GPU Operator from the site's GPU generations."""

from __future__ import annotations

import pytest

from components import gpu_driver
from components.config import ConfigError, GpuOperatorSettings

V100 = (0x10DE, 0x1DB4)
T4 = (0x10DE, 0x1EB8)
A100_80 = (0x10DE, 0x20B5)
H100 = (0x10DE, 0x2331)
UNKNOWN = (0x10DE, 0x1B38)


def settings(**values) -> GpuOperatorSettings:
    return GpuOperatorSettings.model_validate(values)


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([V100], {"Volta"}),
        ([T4, A100_80], {"Turing", "Ampere"}),
        ([A100_80, A100_80], {"Ampere"}),
        ([H100, UNKNOWN], {"Hopper", None}),
        ([], set()),
    ],
    ids=["volta", "turing-ampere", "duplicates", "unknown-device", "none"],
)
def test_site_generations(pairs, expected):
    assert gpu_driver.site_generations(pairs) == frozenset(expected)


@pytest.mark.parametrize(
    ("chart_version", "expected"),
    [
        ("v24.9.2", "550.144.03"),
        ("v25.3.0", "570.124.06"),
        ("v25.10.0", "580.95.05"),
        ("v26.3.0", "580.126.20"),
        ("26.3.1", "580.126.20"),
        ("v26.3.0-lab.1", "580.126.20"),
        ("v26.7.0", "595.91.07"),
        ("v27.1.0", None),
        ("latest", None),
    ],
)
def test_chart_default_driver(chart_version, expected):
    assert gpu_driver.chart_default_driver(chart_version) == expected


@pytest.mark.parametrize(
    ("generations", "expected"),
    [
        ({"Volta"}, "proprietary"),
        ({"Volta", "Ampere"}, "proprietary"),
        ({"Volta", None}, "proprietary"),
        ({"Turing"}, "open"),
        ({"Ampere", "Ada Lovelace", "Hopper"}, "open"),
        ({"Ampere", None}, "auto"),
        ({None}, "auto"),
        (set(), "auto"),
    ],
    ids=["volta", "volta-and-ampere", "volta-and-unknown", "turing", "newer", "ampere-and-unknown", "unknown", "none"],
)
def test_default_kernel_module_type(generations, expected):
    assert gpu_driver.default_kernel_module_type(generations) == expected


def test_volta_on_chart_with_r580_default():
    choice = gpu_driver.choose_driver(settings(version="v26.3.0"), {"Volta"})

    assert choice.version == "580.126.20"
    assert choice.kernel_module_type == "proprietary"
    assert choice.enabled is True


def test_volta_on_chart_with_r595_default_pins_r580():
    choice = gpu_driver.choose_driver(settings(version="v26.7.0"), {"Volta"})

    assert choice.version == gpu_driver.VOLTA_DRIVER
    assert gpu_driver.driver_branch(choice.version) == 580


def test_volta_keeps_older_chart_default():
    choice = gpu_driver.choose_driver(settings(version="v25.10.0"), {"Volta"})

    assert choice.version == "580.95.05"


def test_newer_generation_uses_chart_default_and_open():
    choice = gpu_driver.choose_driver(settings(version="v26.7.0"), {"Ampere"})

    assert choice.version == "595.91.07"
    assert choice.kernel_module_type == "open"


def test_mixed_site_gets_proprietary_r580():
    choice = gpu_driver.choose_driver(settings(version="v26.7.0"), {"Volta", "Hopper"})

    assert choice.version == "580.126.20"
    assert choice.kernel_module_type == "proprietary"


def test_settings_override_choice():
    choice = gpu_driver.choose_driver(
        settings(version="v26.3.0", driverVersion="580.95.05", kernelModuleType="proprietary"), {"Ampere"}
    )

    assert choice.version == "580.95.05"
    assert choice.kernel_module_type == "proprietary"


def test_volta_rejects_open_kernel_module():
    with pytest.raises(ConfigError, match=r"gpuOperator\.kernelModuleType: open does not support the site's Volta GPUs"):
        gpu_driver.choose_driver(settings(kernelModuleType="open"), {"Volta", "Ampere"})


def test_volta_accepts_auto_kernel_module():
    choice = gpu_driver.choose_driver(settings(kernelModuleType="auto"), {"Volta"})

    assert choice.kernel_module_type == "auto"


def test_volta_rejects_driver_after_r580():
    with pytest.raises(ConfigError, match=r"driver 595\.91\.07 does not support the site's Volta GPUs.*R580 build such as 580\.126\.20"):
        gpu_driver.choose_driver(settings(driverVersion="595.91.07"), {"Volta"})


def test_unknown_chart_line_needs_driver_version():
    with pytest.raises(ConfigError, match=r"no default driver is known for chart version v27\.1\.0; set gpuOperator\.driverVersion"):
        gpu_driver.choose_driver(settings(version="v27.1.0"), {"Ampere"})


def test_unknown_chart_line_with_driver_version():
    choice = gpu_driver.choose_driver(settings(version="v27.1.0", driverVersion="595.91.07"), {"Ampere"})

    assert choice.version == "595.91.07"


def test_disabled_driver_needs_no_version():
    choice = gpu_driver.choose_driver(settings(version="v27.1.0", driverEnabled=False), {"Ampere"})

    assert choice.enabled is False
    assert choice.version is None
    assert choice.kernel_module_type == "open"
