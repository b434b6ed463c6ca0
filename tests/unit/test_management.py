"""The management-role program: flag merge, owner detection, kubeconfig loading and the DeploymentPatch graph."""

from __future__ import annotations

import copy
import pathlib

import pulumi
import pytest
import yaml

from components import management
from components.config import ConfigError, ManagementSettings, parse_management_config

FLAG = "--etcd-dial-timeout-duration"
NAMESPACE = "capi-system"
NAME = "capi-kubeadm-control-plane-controller-manager"
LAB_ARGS = ["--leader-elect", "--metrics-bind-addr=localhost:8080"]


def kubeconfig_document(server: str = "https://127.0.0.1:6443", contexts: tuple[str, ...] = ("lab",)) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "lab-cluster", "cluster": {"server": server, "certificate-authority-data": "Q0EtREFUQQ=="}}],
        "users": [{"name": "admin", "user": {"token": "not-a-real-token-0123456789"}}],
        "contexts": [{"name": name, "context": {"cluster": "lab-cluster", "user": "admin"}} for name in contexts],
        "current-context": contexts[0],
    }


def write_kubeconfig(directory: pathlib.Path, document: dict | None = None) -> pathlib.Path:
    path = directory / "management.kubeconfig"
    path.write_text(yaml.safe_dump(document or kubeconfig_document()))
    path.chmod(0o600)
    return path


def deployment(args: list[str] | None = None, *, labels: dict | None = None, managed_fields: list | None = None, containers: list | None = None) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "generation": 7,
            "labels": labels or {},
            "managedFields": managed_fields or [],
        },
        "spec": {
            "template": {
                "spec": {
                    "containers": containers
                    if containers is not None
                    else [{"name": "manager", "image": "kcp:v1", "args": list(LAB_ARGS if args is None else args)}]
                }
            }
        },
    }


def args_fields(container: str = "manager") -> dict:
    key = 'k:{"name":"%s"}' % container
    return {"f:spec": {"f:template": {"f:spec": {"f:containers": {key: {".": {}, "f:args": {}, "f:image": {}}}}}}}


# Flag merge


def test_merge_flag_appends_when_absent():
    assert management.merge_flag(LAB_ARGS, "40s") == [*LAB_ARGS, f"{FLAG}=40s"]


def test_merge_flag_replaces_in_place():
    args = ["--leader-elect", f"{FLAG}=10s", "--metrics-bind-addr=localhost:8080"]
    assert management.merge_flag(args, "40s") == ["--leader-elect", f"{FLAG}=40s", "--metrics-bind-addr=localhost:8080"]


def test_merge_flag_replaces_two_item_form():
    args = ["--leader-elect", FLAG, "10s", "--v=2"]
    assert management.merge_flag(args, "40s") == ["--leader-elect", f"{FLAG}=40s", "--v=2"]


def test_merge_flag_replaces_single_dash_form():
    assert management.merge_flag(["-etcd-dial-timeout-duration=5s"], "40s") == [f"{FLAG}=40s"]


def test_merge_flag_keeps_sibling_call_timeout():
    args = ["--etcd-call-timeout-duration=15s"]
    assert management.merge_flag(args, "40s") == ["--etcd-call-timeout-duration=15s", f"{FLAG}=40s"]


def test_merge_flag_replaces_every_occurrence():
    args = [f"{FLAG}=10s", "--v=2", f"{FLAG}=20s"]
    assert management.merge_flag(args, "40s") == [f"{FLAG}=40s", "--v=2", f"{FLAG}=40s"]


def test_merge_flag_without_args():
    assert management.merge_flag(None, "40s") == [f"{FLAG}=40s"]


def test_merge_flag_is_idempotent():
    once = management.merge_flag(LAB_ARGS, "40s")
    assert management.merge_flag(once, "40s") == once


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (LAB_ARGS, None),
        ([f"{FLAG}=40s"], "40s"),
        ([FLAG, "25s"], "25s"),
        ([f"{FLAG}=10s", f"{FLAG}=30s"], "30s"),
        (None, None),
    ],
)
def test_flag_value(args, expected):
    assert management.flag_value(args) == expected


# Container choice and patch body


def test_manager_container_by_name():
    containers = [{"name": "kube-rbac-proxy", "args": []}, {"name": "manager", "args": LAB_ARGS}]
    index, container = management.manager_container(deployment(containers=containers))
    assert index == 1
    assert container["name"] == "manager"


def test_manager_container_falls_back_to_only_container():
    index, container = management.manager_container(deployment(containers=[{"name": "controller", "args": []}]))
    assert (index, container["name"]) == (0, "controller")


def test_manager_container_ambiguous_raises():
    containers = [{"name": "a"}, {"name": "b"}]
    with pytest.raises(management.ManagementClusterError) as caught:
        management.manager_container(deployment(containers=containers))

    assert f"{NAMESPACE}/{NAME}" in str(caught.value)
    assert "a, b" in str(caught.value)


def test_controller_patch_lists_earlier_containers_by_name():
    containers = [{"name": "kube-rbac-proxy", "image": "proxy", "args": ["--secure"]}, {"name": "manager", "image": "kcp", "args": LAB_ARGS}]
    patch, args, in_sync = management.controller_patch(deployment(containers=containers), "40s")

    assert patch == [{"name": "kube-rbac-proxy"}, {"name": "manager", "args": [*LAB_ARGS, f"{FLAG}=40s"]}]
    assert args == [*LAB_ARGS, f"{FLAG}=40s"]
    assert in_sync is False


def test_controller_patch_in_sync_when_flag_matches():
    _patch, _args, in_sync = management.controller_patch(deployment([*LAB_ARGS, f"{FLAG}=40s"]), "40s")
    assert in_sync is True


# Owner detection


def test_detect_owners_kapp_labels():
    labels = {"kapp.k14s.io/app": "1700", "kapp.k14s.io/association": "v1.abc"}
    owners = management.detect_owners(deployment(labels=labels))
    assert owners == ["kapp-controller (kapp.k14s.io/app=1700, kapp.k14s.io/association=v1.abc)"]


def test_detect_owners_managed_by_and_clusterctl():
    labels = {"app.kubernetes.io/managed-by": "Helm", "clusterctl.cluster.x-k8s.io": "", "clusterctl.cluster.x-k8s.io/core": "inventory"}
    owners = management.detect_owners(deployment(labels=labels))

    assert "Helm (app.kubernetes.io/managed-by=Helm)" in owners
    assert "clusterctl (clusterctl.cluster.x-k8s.io)" in owners
    assert "clusterctl (clusterctl.cluster.x-k8s.io/core=inventory)" in owners


def test_detect_owners_field_manager_of_args():
    fields = [
        {"manager": "kapp", "operation": "Update", "fieldsV1": args_fields()},
        {"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {"f:status": {}}},
        {"manager": "tkg-gpu", "operation": "Apply", "fieldsV1": args_fields()},
        {"manager": "pulumi-kubernetes-1a2b3c", "operation": "Apply", "fieldsV1": args_fields()},
    ]
    owners = management.detect_owners(deployment(managed_fields=fields))
    assert owners == ["field manager kapp (Update) owns spec.template.spec.containers[manager].args"]


def test_detect_owners_ignores_args_of_other_container():
    fields = [{"manager": "kapp", "operation": "Update", "fieldsV1": args_fields("kube-rbac-proxy")}]
    assert management.detect_owners(deployment(managed_fields=fields)) == []


def test_detect_owners_kapp_annotation_only():
    document = deployment()
    document["metadata"]["annotations"] = {"kapp.k14s.io/app": "42"}
    assert management.detect_owners(document) == ["kapp-controller (kapp.k14s.io/app=42)"]


# Re-apply marker


def test_reapply_marker_keeps_live_value_in_sync():
    metadata = {"generation": 9, "annotations": {management.REAPPLIED_ANNOTATION: "3"}}
    assert management.reapply_marker(metadata, in_sync=True) == "3"


def test_reapply_marker_absent_in_sync():
    assert management.reapply_marker({"generation": 9}, in_sync=True) is None


def test_reapply_marker_takes_generation_on_drift():
    metadata = {"generation": 9, "annotations": {management.REAPPLIED_ANNOTATION: "3"}}
    assert management.reapply_marker(metadata, in_sync=False) == "9"


# Kubeconfig loading


def test_load_kubeconfig_missing_file(tmp_path):
    settings = ManagementSettings(kubeconfig=str(tmp_path / "absent.kubeconfig"))
    with pytest.raises(ConfigError) as caught:
        management.load_kubeconfig(settings)

    message = str(caught.value)
    assert message.startswith("tkg-gpu:management.kubeconfig: cannot read ")
    assert str(tmp_path / "absent.kubeconfig") in message
    assert "No such file" in message


def test_load_kubeconfig_relative_path(tmp_path):
    write_kubeconfig(tmp_path)
    loaded = management.load_kubeconfig(ManagementSettings(kubeconfig="management.kubeconfig"), base_dir=tmp_path)

    assert loaded.context == "lab"
    assert loaded.server == "https://127.0.0.1:6443"


def test_load_kubeconfig_expands_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    write_kubeconfig(tmp_path)
    loaded = management.load_kubeconfig(ManagementSettings(kubeconfig="~/management.kubeconfig"))
    assert loaded.server == "https://127.0.0.1:6443"


def test_load_kubeconfig_selects_context(tmp_path):
    write_kubeconfig(tmp_path, kubeconfig_document(contexts=("first", "second")))
    loaded = management.load_kubeconfig(ManagementSettings(kubeconfig="management.kubeconfig", context="second"), base_dir=tmp_path)

    assert loaded.context == "second"
    assert loaded.document()["current-context"] == "second"


def test_load_kubeconfig_unknown_context(tmp_path):
    write_kubeconfig(tmp_path)
    settings = ManagementSettings(kubeconfig="management.kubeconfig", context="other")
    with pytest.raises(ConfigError) as caught:
        management.load_kubeconfig(settings, base_dir=tmp_path)

    assert "tkg-gpu:management.context: context other not found" in str(caught.value)
    assert "it has: lab" in str(caught.value)


def test_load_kubeconfig_invalid_yaml_hides_content(tmp_path):
    path = tmp_path / "management.kubeconfig"
    path.write_text("users:\n- token: secret-token-value\n  bad: [unclosed\n")
    with pytest.raises(ConfigError) as caught:
        management.load_kubeconfig(ManagementSettings(kubeconfig=str(path)))

    assert "is not valid YAML" in str(caught.value)
    assert "secret-token-value" not in str(caught.value)


def test_load_kubeconfig_not_a_kubeconfig(tmp_path):
    path = tmp_path / "management.kubeconfig"
    path.write_text("just: a map\n")
    with pytest.raises(ConfigError) as caught:
        management.load_kubeconfig(ManagementSettings(kubeconfig=str(path)))

    assert "is not a kubeconfig file" in str(caught.value)


# The program under Pulumi mocks


@pytest.fixture
def management_config(tmp_path):
    write_kubeconfig(tmp_path)
    return parse_management_config(
        {"role": "management", "site": {"name": "lab", "kind": "edge"}, "management": {"kubeconfig": str(tmp_path / "management.kubeconfig")}}
    )


@pytest.fixture
def live_deployment(monkeypatch):
    document = deployment(labels={"kapp.k14s.io/app": "1700"}, managed_fields=[{"manager": "kapp", "operation": "Update", "fieldsV1": args_fields()}])
    monkeypatch.setattr(management, "read_deployment", lambda kubeconfig, namespace, name: copy.deepcopy(document))
    return document


@pytest.fixture
def warnings(monkeypatch):
    recorded: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *args, **kwargs: recorded.append(message))
    monkeypatch.setattr(pulumi.log, "info", lambda message, *args, **kwargs: None)
    return recorded


@pulumi.runtime.test
def test_program_declares_patch(mocks, management_config, live_deployment, warnings):
    outputs = management.declare_management(management_config)

    def check(_):
        patch = mocks.resources["kubeadm-control-plane-controller"]
        assert patch["type"] == "kubernetes:apps/v1:DeploymentPatch"
        metadata = patch["inputs"]["metadata"]
        assert (metadata["name"], metadata["namespace"]) == (NAME, NAMESPACE)
        assert metadata["annotations"]["pulumi.com/patchForce"] == "true"
        assert metadata["annotations"]["pulumi.com/patchFieldManager"] == "tkg-gpu"
        assert metadata["annotations"][management.REAPPLIED_ANNOTATION] == "7"
        containers = patch["inputs"]["spec"]["template"]["spec"]["containers"]
        assert containers == [{"name": "manager", "args": [*LAB_ARGS, f"{FLAG}=40s"]}]

    return outputs["controllerArgs"].apply(check)


@pulumi.runtime.test
def test_program_outputs(mocks, management_config, live_deployment, warnings):
    outputs = management.declare_management(management_config)

    assert outputs["managementClusterServer"] == "https://127.0.0.1:6443"
    assert outputs["controllerOwners"] == [
        "kapp-controller (kapp.k14s.io/app=1700)",
        "field manager kapp (Update) owns spec.template.spec.containers[manager].args",
    ]

    def check(values):
        timeout, args = values
        assert timeout == "40s"
        assert args == [*LAB_ARGS, f"{FLAG}=40s"]

    return pulumi.Output.all(outputs["etcdDialTimeout"], outputs["controllerArgs"]).apply(check)


@pulumi.runtime.test
def test_program_kubeconfig_output_is_secret(mocks, management_config, live_deployment, warnings):
    outputs = management.declare_management(management_config)

    def check(values):
        is_secret, _args = values
        assert is_secret
        provider = mocks.resources["management-cluster"]
        assert provider["type"] == "pulumi:providers:kubernetes"
        assert provider["inputs"]["context"] == "lab"

    return pulumi.Output.all(pulumi.Output.from_input(outputs["kubeconfig"].is_secret()), outputs["controllerArgs"]).apply(check)


@pulumi.runtime.test
def test_program_warns_about_owners(mocks, management_config, live_deployment, warnings):
    outputs = management.declare_management(management_config)

    assert len(warnings) == 1
    assert f"{NAMESPACE}/{NAME} is also managed by: kapp-controller" in warnings[0]
    assert "may revert --etcd-dial-timeout-duration" in warnings[0]
    assert "overlay" in warnings[0]
    return outputs["controllerArgs"]


@pulumi.runtime.test
def test_program_without_drift_keeps_marker(mocks, management_config, monkeypatch, warnings):
    document = deployment([*LAB_ARGS, f"{FLAG}=40s"])
    document["metadata"]["annotations"] = {management.REAPPLIED_ANNOTATION: "2"}
    monkeypatch.setattr(management, "read_deployment", lambda *args: copy.deepcopy(document))
    outputs = management.declare_management(management_config)

    def check(_):
        annotations = mocks.resources["kubeadm-control-plane-controller"]["inputs"]["metadata"]["annotations"]
        assert annotations[management.REAPPLIED_ANNOTATION] == "2"
        assert warnings == []

    return outputs["controllerArgs"].apply(check)


def test_program_missing_deployment_raises(mocks, management_config, monkeypatch):
    def absent(kubeconfig, namespace, name):
        raise management.ManagementClusterError(f"Deployment {namespace}/{name} not found in the management cluster")

    monkeypatch.setattr(management, "read_deployment", absent)
    with pytest.raises(pulumi.RunError) as caught:
        management.declare_management(management_config)

    assert f"Deployment {NAMESPACE}/{NAME} not found" in str(caught.value)


def test_program_missing_kubeconfig_raises(mocks, tmp_path):
    cfg = parse_management_config(
        {"role": "management", "site": {"name": "lab", "kind": "edge"}, "management": {"kubeconfig": str(tmp_path / "none")}}
    )
    with pytest.raises(ConfigError) as caught:
        management.declare_management(cfg)

    assert "tkg-gpu:management.kubeconfig" in str(caught.value)
    assert str(tmp_path / "none") in str(caught.value)
