"""Reading the stack configuration and the site's vCenter inventory before any resource is declared."""

from __future__ import annotations

import dataclasses
import pathlib
import shutil
from typing import Any

import pulumi

from components import config, vsphere
from components.i18n import _


def project_directory() -> pathlib.Path:
    """Return the Pulumi project directory: the engine's root directory, else the nearest parent with Pulumi.yaml."""
    root = pulumi.get_root_directory()
    if root:
        return pathlib.Path(root)

    start = pathlib.Path.cwd()
    for directory in (start, *start.parents):
        if (directory / "Pulumi.yaml").is_file():
            return directory

    return start


def read_raw_config() -> dict[str, Any]:
    """Collect the ``tkg-gpu:`` settings as plain data; the password is read separately as a secret."""
    stack_config = pulumi.Config(config.NAMESPACE)
    raw: dict[str, Any] = {}
    for key in config.CONFIG_KEYS:
        # get_object parses JSON, which a plain string such as `role: management` is not.
        value = stack_config.get(key) if key in config.TEXT_KEYS else stack_config.get_object(key)
        if value is not None:
            raw[key] = value

    return raw


def connection_input(site: config.SiteConfig) -> pulumi.Output[dict[str, Any]]:
    """Build the secret connection input that every vCenter-facing resource receives."""
    password = pulumi.Config(config.NAMESPACE).require_secret(config.PASSWORD_KEY)

    return pulumi.Output.secret(
        password.apply(
            lambda value: {
                "server": site.vcenter.server,
                "username": site.vcenter.username,
                "password": value,
                "insecure": site.vcenter.insecure,
                "thumbprint": site.vcenter.thumbprint,
            }
        )
    )


def discovery_connection(site: config.SiteConfig) -> vsphere.Connection:
    """Build a connection for the read-only inventory pass the program makes while it runs.

    The plain password stays in this process's memory; it is passed to resources only as a secret.
    """
    full_key = f"{config.NAMESPACE}:{config.PASSWORD_KEY}"
    password = pulumi.runtime.get_config(full_key)
    if not password:
        raise config.ConfigError(
            _("tkg-gpu:{key}: missing; set it with `pulumi config set --secret {key}`").format(key=config.PASSWORD_KEY)
        )

    if not pulumi.runtime.is_config_secret(full_key):
        raise config.ConfigError(
            _("tkg-gpu:{key}: stored in plain text in the stack file; set it again with `pulumi config set --secret {key}`").format(
                key=config.PASSWORD_KEY
            )
        )

    return vsphere.Connection(
        server=site.vcenter.server,
        username=site.vcenter.username,
        password=password,
        insecure=site.vcenter.insecure,
        thumbprint=site.vcenter.thumbprint,
    )


@dataclasses.dataclass(frozen=True)
class SiteInventory:
    hosts: dict[str, vsphere.HostState]
    template: vsphere.TemplateState


def template_path(site: config.SiteConfig) -> str:
    """Return the template's inventory path; a bare name is looked up in the datacenter's VM folder."""
    template = site.vcenter.template
    if template.startswith("/"):
        return template

    return f"/{site.vcenter.datacenter}/vm/{template}"


def check_tanzu_cli(site: config.SiteConfig) -> None:
    """Fail before any resource when the tanzu CLI named in the stack cannot be run."""
    if shutil.which(site.tanzu.cli) is None:
        raise config.ConfigError(
            _("tkg-gpu:tanzu.cli: {cli!r} not found on PATH; install the tanzu CLI or set a command name or an absolute path without arguments").format(
                cli=site.tanzu.cli
            )
        )


def read_inventory(site: config.SiteConfig) -> SiteInventory:
    """Read the hosts and the worker template in one session; raise ConfigError when the template is missing."""
    with vsphere.connect(discovery_connection(site)) as service_instance:
        hosts = vsphere.read_hosts(service_instance)
        template = vsphere.read_template(service_instance, template_path(site))

    if template is None:
        raise config.ConfigError(
            _("tkg-gpu:vcenter.template: no VM template found at {path}; give the template's inventory path, such as /dc01/vm/tkg/ubuntu-2204-efi-gpu").format(
                path=template_path(site)
            )
        )

    return SiteInventory(hosts=hosts, template=template)
