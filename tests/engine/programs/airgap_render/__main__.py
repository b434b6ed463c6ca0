"""Render the GPU Operator chart and the CUDA validation Pod to YAML files, with no cluster.

The program reads the site settings (``tkg-gpu:*``) as the site program does and builds the Helm values,
chart reference and validation image with the functions GpuOperator and GpuValidation use. Every resource
goes through a kubernetes Provider with ``renderYamlToDirectory``, which writes manifests to
``airgap-render:renderDirectory`` and contacts no API server. The chart must be a local path.

``airgap-render:mode`` selects what is declared:

- ``render`` (default, for ``pulumi up``): the chart rendered client-side by ``kubernetes.helm.v3.Chart``
  with the Release's values, the GPU Operator namespace and the validation Pod.
- ``components`` (for ``pulumi preview`` only): the real GpuOperator and GpuValidation components, so that
  a policy pack receives the Release and Pod inputs the site program declares. ``pulumi up`` cannot run this
  mode, because a Helm Release needs a cluster even in render mode.
"""

import pathlib

import pulumi
import pulumi_kubernetes as kubernetes

from components import config, gpu_catalog, gpu_driver, gpu_operator, gpu_validation, site

PROGRAM_NAMESPACE = "airgap-render"
# Helm renders without a cluster as if for Kubernetes v1.20.0, below the chart's kubeVersion (>=1.25.0-0), so
# the program names the version of the lab's workload API server instead.
DEFAULT_KUBE_VERSION = "v1.36.3"
# Placeholder for the workload kubeconfig of CudaValidation. Only its create step reads it, and preview never runs that.
PREVIEW_KUBECONFIG = "unused: preview only"


def worker_generations(site_config: config.SiteConfig) -> list[str | None]:
    """Return the GPU generation of ``gpu.model``, as gpu_driver.site_generations gives for its PCI IDs."""
    model = gpu_catalog.find_model(site_config.gpu.model) if site_config.gpu.model else None

    return [model.generation if model is not None else None]


def declare_rendered(site_config: config.SiteConfig, provider: kubernetes.Provider, kube_version: str) -> None:
    settings = site_config.gpu_operator
    registry = site_config.registry.repository if site_config.registry else None
    pod_security = site_config.cluster.pod_security_standard_enforce is not None
    driver = gpu_driver.choose_driver(settings, worker_generations(site_config))
    location = gpu_operator.chart_source(settings, registry, site.project_directory())
    values = gpu_operator.render_values(settings, driver, registry=registry, pod_security=pod_security)
    if not pathlib.Path(location.chart).is_dir():
        raise pulumi.RunError(
            f"chart {location.chart} is not a local chart directory; set tkg-gpu:gpuOperator.chart.path, "
            "because this program renders charts only from disk"
        )

    namespace = kubernetes.core.v1.Namespace(
        "gpu-operator-namespace",
        metadata=kubernetes.meta.v1.ObjectMetaArgs(
            name=settings.namespace, labels=gpu_operator.namespace_labels(pod_security)
        ),
        opts=pulumi.ResourceOptions(provider=provider),
    )
    # Chart v3 names the release after the resource, so the resource takes the Release's name.
    kubernetes.helm.v3.Chart(
        settings.release_name,
        kubernetes.helm.v3.LocalChartOpts(
            path=location.chart, namespace=settings.namespace, values=values, kube_version=kube_version
        ),
        opts=pulumi.ResourceOptions(provider=provider, depends_on=[namespace]),
    )

    validation = site_config.validation
    image = gpu_validation.validation_image(validation.image, site_config.registry)
    # The Pod GpuValidation declares; its CudaValidation step needs a cluster and is left out.
    gpu_validation.validation_pod(
        "cuda-vector-add",
        settings=validation,
        registry=site_config.registry,
        namespace=validation.namespace,
        opts=pulumi.ResourceOptions(provider=provider),
    )

    pulumi.export("chart", location.chart)
    pulumi.export("chartRepository", location.repository)
    pulumi.export("values", values)
    pulumi.export("validationImage", image)


def declare_components(site_config: config.SiteConfig, provider: kubernetes.Provider) -> None:
    gpu_operator.GpuOperator(
        "gpu-operator",
        site=site_config,
        generations=worker_generations(site_config),
        provider=provider,
    )
    gpu_validation.GpuValidation(
        "gpu-validation",
        settings=site_config.validation,
        registry=site_config.registry,
        expected_gpus=site_config.cluster.worker_count * site_config.gpu.per_worker,
        kubeconfig=pulumi.Output.secret(PREVIEW_KUBECONFIG),
        provider=provider,
    )


program_config = pulumi.Config(PROGRAM_NAMESPACE)
mode = program_config.get("mode") or "render"
try:
    parsed_site = config.parse_site_config(site.read_raw_config())
except config.ConfigError as error:
    raise pulumi.RunError(str(error)) from None

render_provider = kubernetes.Provider(
    "render", render_yaml_to_directory=program_config.require("renderDirectory")
)
if mode == "render":
    declare_rendered(parsed_site, render_provider, program_config.get("kubeVersion") or DEFAULT_KUBE_VERSION)
elif mode == "components":
    declare_components(parsed_site, render_provider)
else:
    raise pulumi.RunError(f"{PROGRAM_NAMESPACE}:mode is {mode!r}; set it to render or components")
