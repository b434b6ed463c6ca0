"""Clients of the official Kubernetes library built from kubeconfig text, with no credential file left on disk.

The library writes a kubeconfig's embedded certificate and key data to files before it connects. Here they go
into a private 0700 directory, are loaded into an in-memory TLS context and are removed before the first request.
"""

from __future__ import annotations

import contextlib
import ssl
import tempfile
import threading
from collections.abc import Iterator
from typing import Any

import kubernetes.client
import kubernetes.config
import urllib3
import yaml

from components.i18n import _

# Keeps one thread's certificate files from being removed while another thread's client loads them.
_CLIENT_LOCK = threading.Lock()


def _parse(kubeconfig: str, cluster: str, error_type: type[Exception]) -> dict[str, Any]:
    try:
        parsed = yaml.safe_load(kubeconfig)
    except yaml.YAMLError:
        # The YAML error quotes the document, so neither it nor its cause is shown.
        raise error_type(_("{cluster}'s kubeconfig is not valid YAML").format(cluster=cluster)) from None

    if not isinstance(parsed, dict):
        raise error_type(_("{cluster}'s kubeconfig is not a YAML mapping").format(cluster=cluster))

    return parsed


def _ssl_context(configuration: kubernetes.client.Configuration) -> ssl.SSLContext:
    """Load the CA and client certificate into memory while the library's files still exist."""
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)

    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE

    return context


def _pool_manager(configuration: kubernetes.client.Configuration, context: ssl.SSLContext) -> urllib3.PoolManager:
    """Build the client's connection pool on an in-memory TLS context instead of certificate file paths."""
    pool_args: dict[str, Any] = {
        "ssl_context": context,
        "cert_reqs": ssl.CERT_REQUIRED if configuration.verify_ssl else ssl.CERT_NONE,
        "maxsize": configuration.connection_pool_maxsize or 4,
    }
    if configuration.assert_hostname is not None:
        pool_args["assert_hostname"] = configuration.assert_hostname
    if configuration.tls_server_name:
        pool_args["server_hostname"] = configuration.tls_server_name

    if configuration.proxy:
        # NOTE: a socks5:// proxy-url is not supported; urllib3.ProxyManager rejects it.
        return urllib3.ProxyManager(proxy_url=configuration.proxy, proxy_headers=configuration.proxy_headers, **pool_args)

    return urllib3.PoolManager(**pool_args)


def _configure(config_dict: dict[str, Any], cluster: str, error_type: type[Exception]) -> tuple[kubernetes.client.Configuration, ssl.SSLContext]:
    configuration = kubernetes.client.Configuration()
    with _CLIENT_LOCK, tempfile.TemporaryDirectory(prefix="tkg-gpu-kubeconfig-") as private_dir:
        try:
            kubernetes.config.load_kube_config_from_dict(
                config_dict, client_configuration=configuration, persist_config=False, temp_file_path=private_dir
            )
            return configuration, _ssl_context(configuration)
        except (kubernetes.config.ConfigException, ssl.SSLError) as error:
            # These messages name the missing key or the PEM problem, not the data. Only the first line is
            # shown, because the library's multi-line messages quote command lines.
            first_line = str(error).splitlines()[0] if str(error) else ""
            detail = f"{type(error).__name__}: {first_line}"
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            # Parsing errors of malformed fields may quote them, so only the error type is shown.
            detail = type(error).__name__

    raise error_type(_("{cluster}'s kubeconfig is invalid: {error}").format(cluster=cluster, error=detail))


@contextlib.contextmanager
def api_client(
    kubeconfig: str, *, cluster: str, error_type: type[Exception] = RuntimeError
) -> Iterator[kubernetes.client.ApiClient]:
    """Yield an API client for the kubeconfig text's current context.

    ``cluster`` names the cluster in error messages, such as "the workload cluster"; kubeconfig problems raise
    ``error_type`` with a message that never quotes the kubeconfig.
    """
    configuration, context = _configure(_parse(kubeconfig, cluster, error_type), cluster, error_type)
    client = kubernetes.client.ApiClient(configuration)
    client.rest_client.pool_manager = _pool_manager(configuration, context)
    try:
        yield client
    finally:
        client.close()
