"""The TKG workload cluster as a dynamic resource driving the tanzu CLI, with a real read for refresh."""

from __future__ import annotations

import base64
from typing import Any

import pulumi
from pulumi import dynamic

from components import tanzu_cli
from components.config import duration_seconds
from components.tkg_variables import render_config_file

PROVIDER_VERSION = "2"
HEALTHY_STATUSES = frozenset({"running", "creating", "updating"})

_STATUS_KEYS = ("status", "controlplane", "workers", "kubernetes", "tkr", "plan")
# Outputs read from the management cluster, never inputs: the list entry's fields and the admin kubeconfig.
_OUTPUT_KEYS = (*_STATUS_KEYS, "kubeconfig")


def _status_outputs(cluster: dict[str, Any]) -> dict[str, Any]:
    return {key: cluster.get(key, "") for key in _STATUS_KEYS}


def _observed(cli: str, name: str, namespace: str) -> dict[str, Any]:
    """Read the cluster's list entry and, while it exists, its admin kubeconfig."""
    cluster = tanzu_cli.find_cluster(cli, name, namespace)
    if cluster is None:
        return {**_status_outputs({"status": "unknown"}), "kubeconfig": ""}

    return {**_status_outputs(cluster), "kubeconfig": tanzu_cli.admin_kubeconfig(cli, name, namespace)}


def _secrets(connection: dict[str, Any]) -> list[str]:
    password = connection.get("password") or ""

    return [password, base64.b64encode(password.encode()).decode()] if password else []


class TanzuClusterProvider(dynamic.ResourceProvider):
    """Create with ``tanzu cluster create``, read with ``cluster list -o json``, delete with ``cluster delete``.

    Inputs: ``cluster_name``, ``namespace``, ``variables`` (TKG variables without the password),
    ``connection`` (secret), ``tanzu_cli``, ``create_timeout``, ``delete_timeout``, ``provider_version``.
    """

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        cli, name, namespace = props["tanzu_cli"], props["cluster_name"], props["namespace"]
        existing = tanzu_cli.find_cluster(cli, name, namespace)
        if existing is not None and existing.get("status") == "deleting":
            tanzu_cli.wait_until_gone(cli, name, namespace, timeout=duration_seconds(props["delete_timeout"]))

        content = render_config_file(props["variables"], props["connection"]["password"])
        timeout = duration_seconds(props["create_timeout"])
        with tanzu_cli.private_config_file(content) as path:
            tanzu_cli.run(
                cli,
                ["cluster", "create", name, "--file", path, "--namespace", namespace, "--timeout", props["create_timeout"]],
                timeout=timeout + 60,
                secrets=_secrets(props["connection"]),
            )

        return dynamic.CreateResult(f"{namespace}/{name}", {**props, **_observed(cli, name, namespace)})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        """Replace when the cluster is gone or broken or its rendered shape changed; scale in place."""
        old_variables = dict(olds.get("variables") or {})
        new_variables = dict(news.get("variables") or {})
        old_count = old_variables.pop("WORKER_MACHINE_COUNT", None)
        new_count = new_variables.pop("WORKER_MACHINE_COUNT", None)

        replaces = [key for key in ("cluster_name", "namespace") if olds.get(key) != news.get(key)]
        if old_variables != new_variables:
            replaces.append("variables")
        if olds.get("status") not in HEALTHY_STATUSES:
            replaces.append("status")

        changed = bool(replaces) or old_count != new_count or any(
            olds.get(key) != news.get(key)
            for key in ("connection", "tanzu_cli", "create_timeout", "delete_timeout", "provider_version")
        )

        # A passthrough GPU serves one VM at a time, so the old cluster must release its GPUs first.
        return dynamic.DiffResult(changes=changed, replaces=replaces or None, delete_before_replace=True)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        cli, name, namespace = news["tanzu_cli"], news["cluster_name"], news["namespace"]
        old_count = (olds.get("variables") or {}).get("WORKER_MACHINE_COUNT")
        new_count = news["variables"].get("WORKER_MACHINE_COUNT")
        if old_count != new_count:
            # Numbers come back from the state as floats, and the CLI's integer flag rejects "2.0".
            tanzu_cli.run(
                cli,
                ["cluster", "scale", name, "--worker-machine-count", str(int(new_count)), "--namespace", namespace],
                timeout=duration_seconds(news["create_timeout"]),
            )

        return dynamic.UpdateResult({**news, **_observed(cli, name, namespace)})

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        cli, name, namespace = props["tanzu_cli"], props["cluster_name"], props["namespace"]
        cluster = tanzu_cli.find_cluster(cli, name, namespace)
        if cluster is None or cluster.get("status") == "deleting":
            return dynamic.ReadResult("", {})

        inputs = {key: value for key, value in props.items() if key not in _OUTPUT_KEYS and key != "__provider"}
        kubeconfig = tanzu_cli.admin_kubeconfig(cli, name, namespace)

        return dynamic.ReadResult(id_, {**props, **_status_outputs(cluster), "kubeconfig": kubeconfig}, inputs)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        cli, name, namespace = props["tanzu_cli"], props["cluster_name"], props["namespace"]
        if tanzu_cli.find_cluster(cli, name, namespace) is None:
            return

        timeout = duration_seconds(props["delete_timeout"])
        tanzu_cli.run(cli, ["cluster", "delete", name, "--namespace", namespace, "--yes"], timeout=300)
        tanzu_cli.wait_until_gone(cli, name, namespace, timeout=timeout)


class TanzuCluster(dynamic.Resource, module="tkggpu", name="TanzuCluster"):
    """A TKG workload cluster as the management cluster reports it through the tanzu CLI."""

    cluster_name: pulumi.Output[str]
    namespace: pulumi.Output[str]
    status: pulumi.Output[str]
    controlplane: pulumi.Output[str]
    workers: pulumi.Output[str]
    kubernetes: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    """Admin kubeconfig of the workload cluster (``kubeconfig get --admin``), always a secret."""

    def __init__(
        self,
        resource_name: str,
        *,
        cluster_name: str,
        namespace: str,
        variables: pulumi.Input[dict[str, Any]],
        connection: pulumi.Input[dict[str, Any]],
        tanzu_cli: str,
        create_timeout: str,
        delete_timeout: str,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            "cluster_name": cluster_name,
            "namespace": namespace,
            "variables": variables,
            "connection": connection,
            "tanzu_cli": tanzu_cli,
            "create_timeout": create_timeout,
            "delete_timeout": delete_timeout,
            "provider_version": PROVIDER_VERSION,
            **{key: None for key in _OUTPUT_KEYS},
        }
        secret_outputs = pulumi.ResourceOptions(additional_secret_outputs=["connection", "kubeconfig"])
        super().__init__(
            TanzuClusterProvider(), resource_name, props, pulumi.ResourceOptions.merge(secret_outputs, opts)
        )
