"""Admin kubeconfig of a workload cluster, merged into a kubeconfig file.

Like TKG's `kubeconfig get --admin`, the context is named `<cluster>-admin@<cluster>` and is
merged without switching the file's current context; a new file gets it as current context.
The server URL comes from the cluster record. Credentials come from the current context of
the kubeconfig named by TANZU_DOUBLE_WORKLOAD_KUBECONFIG, so that the lab's real workload API
server accepts them. Without that variable the user entry is empty and TLS verification is off.
With TANZU_DOUBLE_MANAGEMENT_KUBECONFIG set, the double stores this kubeconfig, made
self-contained, in the Secret `<cluster>-kubeconfig` of the management cluster, and
`kubeconfig get` reads it from there (planes.py).
"""

from __future__ import annotations

import base64
import contextlib
import os
import tempfile

import yaml

from .config import load_yaml_document
from .errors import CliError

SOURCE_KUBECONFIG_VARIABLE = "TANZU_DOUBLE_WORKLOAD_KUBECONFIG"
_FILE_FIELDS = ("certificate-authority", "client-certificate", "client-key", "tokenFile")


def context_name(cluster: str) -> str:
    return f"{cluster}-admin@{cluster}"


def default_kubeconfig_path(environ: dict[str, str]) -> str:
    configured = environ.get("KUBECONFIG", "")
    if configured:
        return configured.split(os.pathsep)[0]
    return os.path.join(os.path.expanduser("~"), ".kube", "config")


def _absolute_file_fields(entry: dict, base_directory: str) -> dict:
    result = dict(entry)
    for key in _FILE_FIELDS:
        value = result.get(key)
        if isinstance(value, str) and value and not os.path.isabs(value):
            result[key] = os.path.join(base_directory, value)
    return result


def _source_credentials(path: str) -> tuple[dict, dict]:
    """Cluster fields (without server) and user fields of the source kubeconfig's current context."""
    try:
        with open(path, encoding="utf-8") as stream:
            document = load_yaml_document(stream.read(), f"{SOURCE_KUBECONFIG_VARIABLE} file {path!r}")
    except OSError as error:
        raise CliError(f"unable to read {SOURCE_KUBECONFIG_VARIABLE} file {path!r}: {error.strerror}") from None
    if not isinstance(document, dict):
        raise CliError(f"{SOURCE_KUBECONFIG_VARIABLE} file {path!r} is not a kubeconfig")
    current = document.get("current-context")
    contexts = {item.get("name"): item.get("context", {}) for item in document.get("contexts") or []}
    if current not in contexts:
        raise CliError(f"{SOURCE_KUBECONFIG_VARIABLE} file {path!r} has no usable current-context")
    context = contexts[current]
    clusters = {item.get("name"): item.get("cluster", {}) for item in document.get("clusters") or []}
    users = {item.get("name"): item.get("user", {}) for item in document.get("users") or []}
    base = os.path.dirname(os.path.abspath(path))
    cluster = _absolute_file_fields(clusters.get(context.get("cluster"), {}), base)
    cluster.pop("server", None)
    user = _absolute_file_fields(users.get(context.get("user"), {}), base)
    return cluster, user


def admin_kubeconfig(cluster: str, server: str, environ: dict[str, str]) -> dict:
    source = environ.get(SOURCE_KUBECONFIG_VARIABLE, "")
    if source:
        cluster_fields, user_fields = _source_credentials(source)
    else:
        cluster_fields, user_fields = {"insecure-skip-tls-verify": True}, {}
    user_name = f"{cluster}-admin"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server, **cluster_fields}}],
        "contexts": [{"name": context_name(cluster), "context": {"cluster": cluster, "user": user_name}}],
        "current-context": context_name(cluster),
        "preferences": {},
        "users": [{"name": user_name, "user": user_fields}],
    }


# File fields of a kubeconfig and the fields that carry the same data inline.
_EMBEDDED_FIELDS = {
    "certificate-authority": "certificate-authority-data",
    "client-certificate": "client-certificate-data",
    "client-key": "client-key-data",
}


def _embed_files(entry: dict, entry_name: str) -> dict:
    result = dict(entry)
    for file_field, data_field in _EMBEDDED_FIELDS.items():
        path = result.pop(file_field, None)
        if not path or result.get(data_field):
            continue
        try:
            with open(path, "rb") as stream:
                result[data_field] = base64.b64encode(stream.read()).decode("ascii")
        except OSError as error:
            raise CliError(f"unable to read the {file_field} file of {entry_name} {path!r}: {error.strerror}") from None
    token_file = result.pop("tokenFile", None)
    if token_file and not result.get("token"):
        try:
            with open(token_file, encoding="utf-8") as stream:
                result["token"] = stream.read().strip()
        except (OSError, UnicodeDecodeError):
            raise CliError(f"unable to read the tokenFile of {entry_name} {token_file!r}") from None
    return result


def self_contained(config: dict) -> dict:
    """Return a copy of a kubeconfig whose certificate, key and token files are embedded as data.

    The Secret that CAPI writes for a workload cluster is read on other machines, so it carries
    no file paths.
    """
    result = dict(config)
    result["clusters"] = [
        {**item, "cluster": _embed_files(item.get("cluster") or {}, f"cluster {item.get('name')!r}")}
        for item in config.get("clusters") or []
    ]
    result["users"] = [
        {**item, "user": _embed_files(item.get("user") or {}, f"user {item.get('name')!r}")}
        for item in config.get("users") or []
    ]
    return result


def _merge_named(existing: list | None, new: list) -> list:
    merged = {item.get("name"): item for item in existing or [] if isinstance(item, dict)}
    for item in new:
        merged[item["name"]] = item
    return list(merged.values())


def merge_into_file(new_config: dict, path: str) -> None:
    """Merge `new_config` into `path`, keeping the file's current context; the file ends up 0600."""
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as stream:
                existing = load_yaml_document(stream.read(), f"kubeconfig {path!r}") or {}
        except OSError as error:
            raise CliError(f"unable to read kubeconfig {path!r}: {error.strerror}") from None
        if not isinstance(existing, dict):
            raise CliError(f"unable to merge into {path!r}: it is not a kubeconfig file")
        merged = dict(existing)
        merged.setdefault("apiVersion", "v1")
        merged.setdefault("kind", "Config")
        for key in ("clusters", "contexts", "users"):
            merged[key] = _merge_named(existing.get(key), new_config[key])
        merged["current-context"] = existing.get("current-context") or new_config["current-context"]
    else:
        merged = new_config

    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=".kubeconfig-", dir=directory)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            yaml.safe_dump(merged, stream, default_flow_style=False, sort_keys=False)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
