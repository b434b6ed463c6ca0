"""Reading a flat TKG configuration file the way the tanzu CLI does.

TKG reads the file through viper: every value is read back as a string, and an environment
variable of the same name overrides the file (viper's AutomaticEnv). Before the values reach
the ytt templates, TKG turns strings that parse as null, bool, integer, float or YAML back into
typed values (tanzu-framework v0.29.0, tkg/yamlprocessor/ytt.go), so a quoted "false" and an
unquoted false end up the same. This module reproduces those steps. It never keeps a copy of
the file and never puts a value into an error message.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from typing import Mapping

import yaml

from .errors import CliError

ENCODED_PREFIX = "<encoded:"


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core scalars, like the Go YAML library viper uses.

    PyYAML follows YAML 1.1, where `yes`, `on`, `10:30` and `2024-01-02` become a bool, a
    base-60 integer and a date. Go's yaml.v3 reads them as strings, and so does this loader.
    """


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [
        (tag, pattern)
        for tag, pattern in resolvers
        if tag
        not in (
            "tag:yaml.org,2002:bool",
            "tag:yaml.org,2002:int",
            "tag:yaml.org,2002:float",
            "tag:yaml.org,2002:timestamp",
        )
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+.0123456789"),
)


def _construct_yaml12_int(loader: yaml.SafeLoader, node: yaml.Node) -> int:
    text = loader.construct_scalar(node)
    if text.startswith("0o"):
        return int(text[2:], 8)
    return int(text, 0) if text.startswith("0x") else int(text, 10)


_Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _construct_yaml12_int)


def load_yaml_document(text: str, source: str) -> object:
    """Parse one YAML document. Errors name the position only, never the offending text."""
    try:
        return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise CliError(f"unable to parse {source}{where}: {error.problem}") from None
    except yaml.YAMLError:
        raise CliError(f"unable to parse {source}: not valid YAML") from None


def go_string(value: object) -> str:
    """Convert a YAML value to the string viper's GetString returns for it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if not value.is_integer() else str(int(value))
    if isinstance(value, str):
        return value
    return ""  # maps and lists have no string form in viper's cast.ToString


def template_value(text: str) -> object:
    """Type a string value the way TKG does before handing it to the ytt templates."""
    if text in ("~", "null"):
        return None
    if text == "":
        return ""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def is_truthy(text: str | None) -> bool:
    """Starlark truthiness of a variable after TKG's typing step (empty, 0, false, null: false)."""
    if text is None:
        return False
    value = template_value(text)
    # ytt's YAML parser is YAML 1.1, which also reads y/Y/n/N as booleans.
    if isinstance(value, str) and value in ("y", "Y", "n", "N"):
        return value in ("y", "Y")
    return bool(value)


class FlatConfig:
    """Variables of one flat TKG configuration file plus environment overrides.

    Lookups return strings (viper semantics) or None when a variable is unset or empty.
    """

    def __init__(self, values: Mapping[str, object], environ: Mapping[str, str] | None = None):
        self._values = dict(values)
        self._environ = os.environ if environ is None else environ

    @classmethod
    def from_file(cls, path: str, environ: Mapping[str, str] | None = None) -> "FlatConfig":
        try:
            with open(path, encoding="utf-8") as stream:
                text = stream.read()
        except FileNotFoundError:
            raise CliError(f"unable to read configuration file {path!r}: no such file") from None
        except OSError as error:
            raise CliError(f"unable to read configuration file {path!r}: {error.strerror}") from None
        except UnicodeDecodeError:
            raise CliError(f"unable to read configuration file {path!r}: not UTF-8 text") from None

        document = load_yaml_document(text, f"configuration file {path!r}")
        if document is None:
            document = {}
        if not isinstance(document, dict):
            raise CliError(
                f"configuration file {path!r} is not a flat TKG configuration: "
                "expected a YAML map of VARIABLE: value"
            )
        if "apiVersion" in document and "kind" in document:
            raise CliError(
                f"configuration file {path!r} contains a Kubernetes object, but the tanzu test double "
                "only accepts flat TKG configuration files (VARIABLE: value)"
            )
        return cls({str(key): value for key, value in document.items()}, environ)

    def get(self, name: str) -> str | None:
        """Return the variable as a string; the environment wins over the file, as in TKG."""
        if name in self._environ:
            text = self._environ[name]
        elif name in self._values:
            text = go_string(self._values[name])
        else:
            return None
        return text if text != "" else None

    def is_set(self, name: str) -> bool:
        return self.get(name) is not None

    def get_or(self, name: str, default: str) -> str:
        value = self.get(name)
        return default if value is None else value

    def truthy(self, name: str) -> bool:
        return is_truthy(self.get(name))


def decode_password(raw: str, variable: str = "VSPHERE_PASSWORD") -> str:
    """Return the plain password from a plain or `<encoded:BASE64>` value."""
    if not raw.startswith(ENCODED_PREFIX):
        return raw
    if not raw.endswith(">"):
        raise CliError(f"unable to decode {variable}: an encoded value must end with '>'")
    payload = raw[len(ENCODED_PREFIX) : -1]
    try:
        return base64.b64decode(payload, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise CliError(f"unable to decode {variable}: the <encoded:...> value is not base64 text") from None
