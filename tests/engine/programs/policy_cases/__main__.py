"""Declare gpu-operator Releases and CUDA validation Pods, each shaped by the stack settings, for policy tests.

The site program cannot produce the faults that the gpu-operator-chart-pinned and validation-requests-gpu
policies look for, so this program declares the resources directly. Settings of the ``policy-cases``
namespace:

- ``renderDirectory``: the ``renderYamlToDirectory`` of the kubernetes Provider that every resource uses,
  so no API server is contacted.
- ``releases``: a list of ``{resource, name, version, pendingValues}``. Each entry declares a
  ``kubernetes.helm.v3.Release`` of the chart at lab/charts/gpu-operator. Without ``name``, the provider
  generates a release name. With ``pendingValues: true``, the Release's values hold the ID of a new
  ConfigMap, which stays unknown all through preview. The kubernetes provider loads the chart in Check only
  when every input is known. Such a Release therefore reaches the policy pack with ``version`` as declared,
  and any other Release of a local chart reaches it with the chart's own version.
- ``pods``: a list of ``{resource, gpuLimit}``. Each entry declares a Pod labelled as part of the CUDA
  validation, with ``resources.limits`` ``nvidia.com/gpu: <gpuLimit>`` when ``gpuLimit`` is set.

Run it with ``pulumi preview`` only: a Helm Release needs a cluster to install, even in render mode.
"""

import pathlib

import pulumi
import pulumi_kubernetes as kubernetes

from components import gpu_validation

PROGRAM_NAMESPACE = "policy-cases"
CHART_PATH = pathlib.Path("lab/charts/gpu-operator")
RELEASE_NAMESPACE = "gpu-operator"
VALIDATION_NAMESPACE = "tkg-gpu-validation"
POD_IMAGE = "registry.k8s.io/cuda-vector-add:v0.1"


def pending_value(resource_name: str, provider: kubernetes.Provider) -> pulumi.Output[str]:
    """Declare a ConfigMap and return its ID, which stays unknown until the ConfigMap exists."""
    config_map = kubernetes.core.v1.ConfigMap(
        resource_name,
        metadata=kubernetes.meta.v1.ObjectMetaArgs(namespace=RELEASE_NAMESPACE),
        data={"purpose": "an input that preview cannot know"},
        opts=pulumi.ResourceOptions(provider=provider),
    )

    return config_map.id


def declare_release(entry: dict, provider: kubernetes.Provider) -> None:
    values = {}
    if entry.get("pendingValues"):
        values["pendingInput"] = pending_value(f"{entry['resource']}-pending", provider)

    kubernetes.helm.v3.Release(
        entry["resource"],
        name=entry.get("name"),
        chart=str(CHART_PATH.resolve()),
        version=entry.get("version"),
        namespace=RELEASE_NAMESPACE,
        values=values,
        opts=pulumi.ResourceOptions(provider=provider),
    )


def declare_pod(entry: dict, provider: kubernetes.Provider) -> None:
    gpu_limit = entry.get("gpuLimit")
    limits = {gpu_validation.GPU_RESOURCE: str(gpu_limit)} if gpu_limit is not None else None
    kubernetes.core.v1.Pod(
        entry["resource"],
        metadata=kubernetes.meta.v1.ObjectMetaArgs(
            name=entry["resource"],
            namespace=VALIDATION_NAMESPACE,
            labels={gpu_validation.PART_OF_LABEL: gpu_validation.PART_OF},
        ),
        spec=kubernetes.core.v1.PodSpecArgs(
            restart_policy="Never",
            containers=[
                kubernetes.core.v1.ContainerArgs(
                    name=gpu_validation.CONTAINER_NAME,
                    image=POD_IMAGE,
                    resources=kubernetes.core.v1.ResourceRequirementsArgs(limits=limits),
                )
            ],
        ),
        opts=pulumi.ResourceOptions(provider=provider),
    )


program_config = pulumi.Config(PROGRAM_NAMESPACE)
render_provider = kubernetes.Provider("render", render_yaml_to_directory=program_config.require("renderDirectory"))
for release in program_config.get_object("releases") or []:
    declare_release(release, render_provider)
for pod in program_config.get_object("pods") or []:
    declare_pod(pod, render_provider)
