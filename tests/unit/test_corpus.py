"""Corpus of bad site configurations (tests/corpus): each one is rejected before any resource, naming its key.

The helpers that load a case and merge it into a base configuration are shared with
tests/engine/test_corpus_engine.py.
"""

from __future__ import annotations

import copy
import dataclasses
import pathlib
import re
import secrets
from typing import Any

import pytest
import yaml

from components import config, gpu_catalog, gpu_profile, i18n, vsphere
from tests.unit import sites

CORPUS_DIR = pathlib.Path(__file__).resolve().parents[1] / "corpus"
PREFIX = f"{config.NAMESPACE}:"
SECRET_PLACEHOLDER = "<secret>"
MIN_CASES = 40
CASE_FIELDS = {"expect", "unset", "inventory"}
EXPECT_FIELDS = {"key", "message", "knownIssue"}
INVENTORY_FIELDS = {"hosts", "gpusPerHost", "pair", "hostMemoryGib", "computeResource"}
ZH_MO = i18n.LOCALE_DIR / "zh_CN" / "LC_MESSAGES" / f"{i18n.DOMAIN}.mo"
CJK = re.compile(r"[\u4e00-\u9fff]")
# The zh_CN catalog renders " (value: …)" as "（值：…）", which contains CJK itself, so the check cuts it off.
ZH_VALUE_SUFFIX = "（值："


@dataclasses.dataclass(frozen=True)
class CorpusCase:
    """One bad configuration: the settings it changes, the inventory it needs, and the expected error."""

    name: str
    settings: dict[str, Any]
    """Changed ``tkg-gpu:`` sections, keyed by section name without the namespace."""
    unset: tuple[str, ...]
    """Removed settings as ``section`` or ``section.key``, without the namespace."""
    inventory: dict[str, Any]
    key: str
    message: str
    known_issue: str | None

    @property
    def uses_secret(self) -> bool:
        return SECRET_PLACEHOLDER in yaml.safe_dump(self.settings)


def _require(condition: bool, path: pathlib.Path, problem: str) -> None:
    if not condition:
        raise ValueError(f"{path.name}: {problem}; see {CORPUS_DIR / 'README.md'}")


def load_case(path: pathlib.Path) -> CorpusCase:
    """Read one corpus file, raising ValueError when it does not follow tests/corpus/README.md."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    _require(isinstance(document, dict), path, "the file must be a YAML mapping")

    unknown = [key for key in document if not key.startswith(PREFIX) and key not in CASE_FIELDS]
    _require(not unknown, path, f"unknown top-level keys {unknown}")

    expect = document.get("expect")
    _require(isinstance(expect, dict), path, "expect: is missing")
    _require(set(expect) <= EXPECT_FIELDS, path, f"expect: accepts only {sorted(EXPECT_FIELDS)}")
    _require(str(expect.get("key", "")).startswith(PREFIX), path, f"expect.key must start with {PREFIX}")
    _require(bool(expect.get("message")), path, "expect.message is missing")

    inventory = document.get("inventory") or {}
    _require(set(inventory) <= INVENTORY_FIELDS, path, f"inventory: accepts only {sorted(INVENTORY_FIELDS)}")

    unset = document.get("unset") or []
    _require(all(str(item).startswith(PREFIX) for item in unset), path, f"unset: entries must start with {PREFIX}")

    return CorpusCase(
        name=path.stem,
        settings={key.removeprefix(PREFIX): value for key, value in document.items() if key.startswith(PREFIX)},
        unset=tuple(item.removeprefix(PREFIX) for item in unset),
        inventory=inventory,
        key=expect["key"],
        message=expect["message"],
        known_issue=expect.get("knownIssue"),
    )


def load_corpus() -> list[CorpusCase]:
    return [load_case(path) for path in sorted(CORPUS_DIR.glob("*.yaml"))]


def _substitute(value: Any, secret: str) -> Any:
    if isinstance(value, str):
        return value.replace(SECRET_PLACEHOLDER, secret)
    if isinstance(value, dict):
        return {key: _substitute(item, secret) for key, item in value.items()}
    if isinstance(value, list):
        return [_substitute(item, secret) for item in value]

    return value


def merge_case(base: dict[str, Any], case: CorpusCase, secret: str) -> dict[str, Any]:
    """Return the stack settings of a case: ``base`` with the case's sections merged in and its unset keys removed.

    Keys are section names without the ``tkg-gpu:`` namespace. Sections the program does not read are kept.
    """
    merged = copy.deepcopy(base)
    for section, value in _substitute(case.settings, secret).items():
        if isinstance(value, dict) and isinstance(merged.get(section), dict):
            merged[section] = {**merged[section], **value}
        else:
            merged[section] = value

    for path in case.unset:
        section, _dot, key = path.partition(".")
        if key:
            del merged[section][key]
        else:
            del merged[section]

    return merged


def raw_config(settings: dict[str, Any]) -> dict[str, Any]:
    """Keep the sections the program reads, as components.site.read_raw_config does."""
    return {key: settings[key] for key in config.CONFIG_KEYS if key in settings}


def case_inventory(case: CorpusCase) -> dict[str, vsphere.HostState]:
    """Build the vCenter hosts of a case from tests.unit.sites.inventory and the case's overrides."""
    overrides = case.inventory
    arguments: dict[str, Any] = {}
    if "hosts" in overrides:
        arguments["hosts"] = overrides["hosts"]
    if "gpusPerHost" in overrides:
        arguments["gpus_per_host"] = overrides["gpusPerHost"]
    if "pair" in overrides:
        arguments["pair"] = gpu_catalog.parse_pci_pair(overrides["pair"])

    hosts = sites.inventory(**arguments)
    clusters = overrides.get("computeResource") or {}
    result = {}
    for name, host in hosts.items():
        memory = overrides.get("hostMemoryGib")
        result[name] = dataclasses.replace(
            host,
            memory_bytes=host.memory_bytes if memory is None else memory * 1024**3,
            compute_resource=clusters.get(name, host.compute_resource),
        )

    return result


def check_case(case: CorpusCase, secret: str) -> str | None:
    """Run a case through the checks the program makes before it declares resources, and return the ConfigError message.

    Returns None when the case passes every check.
    """
    raw = raw_config(merge_case(sites.BASE_SITE, case, secret))
    hosts = case_inventory(case)
    try:
        site = config.parse_site_config(raw)
        gpu_profile.build_profile(site, hosts)
        gpu_profile.site_facts(site, hosts, sites.template())
    except config.ConfigError as error:
        return str(error)

    return None


def rejection_message(case: CorpusCase, secret: str) -> str:
    message = check_case(case, secret)
    if message is None:
        pytest.fail(f"{case.name}: accepted, expected an error on {case.key}")

    return message


def key_lines(message: str, key: str) -> list[str]:
    return [line for line in message.splitlines() if line.startswith(f"{key}: ")]


CASES = load_corpus()
CASE_IDS = [case.name for case in CASES]


@pytest.fixture
def secret() -> str:
    return f"sentinel-{secrets.token_hex(12)}"


@pytest.fixture(scope="module")
def compiled_catalog() -> None:
    if not ZH_MO.exists():
        pytest.fail(f"{ZH_MO} is missing: run `make i18n` or `.venv/bin/python tools/i18n.py compile`")


def test_corpus_size():
    assert len(CASES) >= MIN_CASES


def test_unchanged_base_accepted(secret):
    """Control: with no changes and the default inventory, the base configuration passes every check."""
    unchanged = CorpusCase(
        name="unchanged", settings={}, unset=(), inventory={}, key=f"{PREFIX}site", message="-", known_issue=None
    )

    assert check_case(unchanged, secret) is None


def test_corpus_covers_every_section():
    sections = {case.key.removeprefix(PREFIX).split(".")[0] for case in CASES}
    assert set(config.CONFIG_KEYS) <= sections


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_case_rejected_with_key(case, secret):
    message = rejection_message(case, secret)

    lines = key_lines(message, case.key)
    assert lines, f"no line starts with {case.key}: in\n{message}"
    assert any(case.message in line for line in lines), f"{case.message!r} not on a {case.key} line of\n{message}"


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(case, marks=pytest.mark.xfail(reason=case.known_issue, strict=True)) if case.known_issue else case
        for case in CASES
    ],
    ids=CASE_IDS,
)
def test_case_hides_secret(case, secret, monkeypatch):
    english = rejection_message(case, secret)
    monkeypatch.setenv("LANGUAGE", "zh_CN")
    chinese = rejection_message(case, secret)

    assert secret not in english
    assert secret not in chinese


def test_secret_cases_present():
    """The secret check is only meaningful while some cases put a secret into the configuration."""
    assert [case.name for case in CASES if case.uses_secret]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_case_chinese_with_key(case, secret, compiled_catalog, monkeypatch):
    monkeypatch.setenv("LANGUAGE", "zh_CN")
    message = rejection_message(case, secret)

    lines = key_lines(message, case.key)
    assert lines, f"no line starts with {case.key}: in\n{message}"
    for line in lines:
        text = line.removeprefix(f"{case.key}: ")
        if ZH_VALUE_SUFFIX in text:
            text = text[: text.rindex(ZH_VALUE_SUFFIX)]
        assert CJK.search(text), f"not translated: {line}"
