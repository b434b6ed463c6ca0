"""Message catalogs: completeness of the zh_CN translation and locale selection from the environment.

The compiled catalog (.mo) is a build product: ``tools/i18n.py compile`` (run by make) writes it next to the .po.
"""

from __future__ import annotations

import ast
import gettext
import pathlib
import string
from typing import Literal

import pydantic
import pytest
from babel.messages import pofile
from pydantic import Field

from components import config, i18n
from policies import rules
from tests.unit.sites import site_dict

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEMPLATE = i18n.LOCALE_DIR / f"{i18n.DOMAIN}.pot"
ZH_PO = i18n.LOCALE_DIR / "zh_CN" / "LC_MESSAGES" / f"{i18n.DOMAIN}.po"
ZH_MO = ZH_PO.with_suffix(".mo")
SOURCES = [*sorted((ROOT / "components").glob("*.py")), ROOT / "policies" / "rules.py"]
LOCALE_VARIABLES = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")


def read_catalog(path: pathlib.Path):
    with path.open("rb") as stream:
        return pofile.read_po(stream, domain=i18n.DOMAIN)


def message_ids(catalog) -> set:
    return {message.id for message in catalog if message.id}


def placeholders(text: str) -> set[tuple[str, str | None, str]]:
    """Return the replacement fields of a str.format template as (name, conversion, format spec)."""
    return {
        (name, conversion, spec)
        for _literal, name, spec, conversion in string.Formatter().parse(text)
        if name is not None
    }


def source_messages() -> set:
    """Collect the literal msgids passed to _() and ngettext() in the files that are extracted."""
    found = set()
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue

            name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
            literals = [arg.value for arg in node.args if isinstance(arg, ast.Constant) and isinstance(arg.value, str)]
            if name == "_" and len(literals) == 1:
                found.add(literals[0])
            elif name == "ngettext" and len(literals) == 2:
                found.add(tuple(literals))

    return found


@pytest.fixture
def locale_env(monkeypatch):
    """Clear every locale variable; the test sets the ones it needs through the returned monkeypatch."""
    for name in LOCALE_VARIABLES:
        monkeypatch.delenv(name, raising=False)

    return monkeypatch


@pytest.fixture(scope="module")
def compiled_catalog():
    """Fail with the build command when the .mo that gettext loads has not been built."""
    if not ZH_MO.exists():
        pytest.fail(f"{ZH_MO.relative_to(ROOT)} is missing: run `make i18n` or `.venv/bin/python tools/i18n.py compile`")


def bad_hardware_version_error() -> str:
    with pytest.raises(config.ConfigError) as caught:
        config.parse_site_config(site_dict(cluster={"hardwareVersion": "17", "workerMemoryMib": 1024}))

    return str(caught.value)


def test_template_lists_every_source_message():
    missing = source_messages() - message_ids(read_catalog(TEMPLATE))
    assert not missing, f"run `.venv/bin/python tools/i18n.py extract` and translate: {sorted(map(str, missing))}"


def test_zh_cn_has_every_template_message():
    assert message_ids(read_catalog(ZH_PO)) == message_ids(read_catalog(TEMPLATE))


def test_zh_cn_translations_complete():
    for message in read_catalog(ZH_PO):
        if not message.id:
            continue

        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        expected = set().union(*(placeholders(text) for text in ids))
        assert not message.fuzzy, f"fuzzy: {ids[0]!r}"
        for text in strings:
            assert text.strip(), f"untranslated: {ids[0]!r}"
            assert placeholders(text) == expected, f"placeholders differ: {ids[0]!r} -> {text!r}"


def test_compiled_catalog_matches_po(compiled_catalog):
    with ZH_MO.open("rb") as stream:
        mo = gettext.GNUTranslations(stream)

    for message in read_catalog(ZH_PO):
        if not message.id:
            continue

        if isinstance(message.id, tuple):
            assert mo.ngettext(*message.id, 1) == message.string[0], "stale .mo: run tools/i18n.py compile"
        else:
            assert mo.gettext(message.id) == message.string, "stale .mo: run tools/i18n.py compile"


def test_config_error_chinese_with_language(compiled_catalog, locale_env):
    locale_env.setenv("LANGUAGE", "zh_CN")
    message = bad_hardware_version_error()

    assert message.startswith("tkg-gpu 堆栈配置无效，未做任何更改：\n")
    assert "tkg-gpu:cluster.hardwareVersion: 必须采用 vmx-<N> 格式，例如 vmx-17（值：'17'）" in message
    assert "tkg-gpu:cluster.workerMemoryMib: 输入应大于或等于 4096（值：1024）" in message


def test_config_error_english_without_locale(compiled_catalog, locale_env):
    message = bad_hardware_version_error()

    assert message.startswith("Invalid tkg-gpu stack configuration; nothing was changed:\n")
    assert "tkg-gpu:cluster.hardwareVersion: must be vmx-<N>, such as vmx-17 (value: '17')" in message
    assert "tkg-gpu:cluster.workerMemoryMib: Input should be greater than or equal to 4096 (value: 1024)" in message


@pytest.mark.parametrize("value", ["C.UTF-8", "en_US.UTF-8", "fr_FR.UTF-8"])
def test_config_error_english_for_other_locales(compiled_catalog, locale_env, value):
    locale_env.setenv("LANG", value)
    assert "must be vmx-<N>, such as vmx-17" in bad_hardware_version_error()


@pytest.mark.parametrize("variable", LOCALE_VARIABLES)
def test_each_locale_variable_selects_chinese(compiled_catalog, locale_env, variable):
    locale_env.setenv(variable, "zh_CN.UTF-8")
    assert "必须采用 vmx-<N> 格式" in bad_hardware_version_error()


def test_language_takes_precedence_over_lang(compiled_catalog, locale_env):
    locale_env.setenv("LANG", "en_US.UTF-8")
    locale_env.setenv("LANGUAGE", "zh_CN")
    assert "必须采用 vmx-<N> 格式" in bad_hardware_version_error()


def test_policy_violation_chinese_with_lc_all(compiled_catalog, locale_env):
    locale_env.setenv("LC_ALL", "zh_CN.UTF-8")
    props = {"cluster_name": "gpu-wc-01", "worker": {"pci_devices_hex": ["0x10DE:0x20B5", "0x10DE:0x1EB8"]}}

    [violation] = rules.one_gpu_type_per_vm(props)

    assert violation.startswith("集群 gpu-wc-01：VSPHERE_WORKER_PCI_DEVICES 在同一台工作节点虚拟机中混用了 2 种 GPU 类型")
    assert "（0x10DE:0x1EB8, 0x10DE:0x20B5）" in violation


class _Section(pydantic.BaseModel):
    name: str = "x"


class _Probe(pydantic.BaseModel):
    """Fields that raise each pydantic error type that format_validation_error translates."""

    flag: bool = False
    count: int = Field(default=1, gt=0, lt=10)
    size: int = Field(default=5, ge=4, le=8)
    choice: Literal["a", "b", "c"] = "a"
    names: list[str] = Field(default_factory=lambda: ["n"], min_length=1)
    pairs: list[int] = Field(default_factory=lambda: [1, 2], min_length=2)
    text: str = ""
    section: _Section = _Section()
    values: dict[str, int] = Field(default_factory=dict)


BUILTIN_CASES = [
    ({"flag": "maybe"}, "bool_parsing"),
    ({"flag": [1]}, "bool_type"),
    ({"count": 0}, "greater_than"),
    ({"size": 3}, "greater_than_equal"),
    ({"count": 2.5}, "int_from_float"),
    ({"count": "two"}, "int_parsing"),
    ({"count": "9" * 5000}, "int_parsing_size"),
    ({"count": [1]}, "int_type"),
    ({"count": 10}, "less_than"),
    ({"size": 9}, "less_than_equal"),
    ({"names": "n"}, "list_type"),
    ({"choice": "d"}, "literal_error"),
    ({"section": "x"}, "model_type"),
    ({"values": "x"}, "dict_type"),
    ({"text": 5}, "string_type"),
    ({"text": b"\xff"}, "string_unicode"),
    ({"names": []}, "too_short"),
    ({"pairs": [1]}, "too_short"),
]


def probe_error(fields: dict) -> tuple[pydantic.ValidationError, dict]:
    with pytest.raises(pydantic.ValidationError) as caught:
        _Probe.model_validate(fields)

    [item] = caught.value.errors()

    return caught.value, item


def test_builtin_cases_cover_table():
    assert {kind for _fields, kind in BUILTIN_CASES} == set(config._BUILTIN_MESSAGES)


@pytest.mark.parametrize(("fields", "kind"), BUILTIN_CASES, ids=[f"{kind}-{next(iter(fields))}" for fields, kind in BUILTIN_CASES])
def test_builtin_message_english_unchanged(locale_env, fields, kind):
    error, item = probe_error(fields)

    prefix = "invalid value; " if kind == "literal_error" else ""

    assert item["type"] == kind
    assert config.format_validation_error(error) == f"tkg-gpu:{item['loc'][0]}: {prefix}{item['msg']} (value: {item['input']!r})"


@pytest.mark.parametrize(("fields", "kind"), BUILTIN_CASES, ids=[f"{kind}-{next(iter(fields))}" for fields, kind in BUILTIN_CASES])
def test_builtin_message_chinese(compiled_catalog, locale_env, fields, kind):
    locale_env.setenv("LANGUAGE", "zh_CN")
    error, item = probe_error(fields)
    line = config.format_validation_error(error)

    assert item["type"] == kind
    assert line.startswith(f"tkg-gpu:{item['loc'][0]}: ")
    assert item["msg"] not in line
    assert "（值：" in line
    for value in (item.get("ctx") or {}).values():
        if isinstance(value, int):
            assert str(value) in line


def test_literal_choices_joined_in_chinese(compiled_catalog, locale_env):
    locale_env.setenv("LANGUAGE", "zh_CN")
    error, _item = probe_error({"choice": "d"})

    assert config.format_validation_error(error) == "tkg-gpu:choice: 无效的值；输入应为 'a', 'b' 或 'c'（值：'d'）"
