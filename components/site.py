"""Reading the stack configuration and the site's vCenter inventory before any resource is declared."""

from __future__ import annotations

from typing import Any

import pulumi

from components import config, vsphere
from components.i18n import _


def read_raw_config() -> dict[str, Any]:
    """Collect the ``tkg-gpu:`` settings as plain data; the password is read separately as a secret."""
    stack_config = pulumi.Config(config.NAMESPACE)
    raw: dict[str, Any] = {}
    for key in config.CONFIG_KEYS:
        value = stack_config.get_object(key)
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


def read_inventory(site: config.SiteConfig) -> dict[str, vsphere.HostState]:
    with vsphere.connect(discovery_connection(site)) as service_instance:
        return vsphere.read_hosts(service_instance)
