"""An OCI registry on 127.0.0.1 for tests, with Helm charts pushed as Helm pushes them.

``OciRegistry`` runs the lab program ``oci-registry`` (go-containerregistry's in-memory registry, built by
``make tools``) over HTTPS with a serving certificate from a CA made for each start, and stops it when its
``with`` block ends. ``push_chart`` uploads a chart archive from ``lab.chart_repo.package_chart`` with the
media types of Helm's OCI support, so ``oci://<host>/<project>/<chart>`` with the chart's version as the tag
is what an air-gapped site's registry would serve::

    with OciRegistry(work_dir) as registry:
        reference = registry.push_chart(archive, "tkg")
        ...  # Helm needs the registry's CA: SSL_CERT_FILE=registry.ca_file
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import ssl
import subprocess
import urllib.parse
import urllib.request

from lab.chart_repo import archive_metadata
from lab.kube import ProcessRecord, find_tool, start_with_ready_line, stop_process, write_loopback_tls

START_TIMEOUT_SECONDS = 30
REQUEST_TIMEOUT_SECONDS = 30
# Media types of a Helm chart in an OCI registry (Helm's pkg/registry/constants.go).
HELM_CONFIG_MEDIA_TYPE = "application/vnd.cncf.helm.config.v1+json"
HELM_CHART_MEDIA_TYPE = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
OCI_MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"


class OciRegistry:
    """The lab's ``oci-registry`` program on a free port of 127.0.0.1, with its CA and log in ``directory``."""

    def __init__(self, directory: pathlib.Path) -> None:
        self.directory = directory
        self.url = ""
        """``https://127.0.0.1:<port>``, set by ``start``."""
        self._process: subprocess.Popen[bytes] | None = None
        self._record: ProcessRecord | None = None

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``, the host part of ``registry.repository`` and of ``oci://`` references."""
        if not self.url:
            raise RuntimeError("the OCI registry is not started; call start() first")

        return urllib.parse.urlsplit(self.url).netloc

    @property
    def ca_file(self) -> pathlib.Path:
        """PEM file of the CA that signed the registry's certificate."""
        return self.directory / "pki" / "ca.crt"

    @property
    def log_path(self) -> pathlib.Path:
        """The program's log: one line per request, such as ``GET /v2/tkg/gpu-operator/manifests/v1.0.0``."""
        return self.directory / "oci-registry.log"

    def start(self) -> OciRegistry:
        executable = find_tool("oci-registry")

        self.directory.mkdir(parents=True, exist_ok=True)
        pki = self.directory / "pki"
        write_loopback_tls(pki, "oci-registry")
        command = [executable, "--listen", "127.0.0.1:0", "--cert", str(pki / "server.crt"), "--key", str(pki / "server.key")]
        self._process, self._record, banner = start_with_ready_line(
            "oci-registry", command, self.log_path, dict(os.environ), START_TIMEOUT_SECONDS
        )
        self.url = banner["url"]

        return self

    def stop(self) -> None:
        if self._record is not None and self._process is not None:
            stop_process(self._record, self._process)
        self._record = None
        self._process = None

    def __enter__(self) -> OciRegistry:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def requests(self) -> list[str]:
        """Return ``<method> <path>`` of each request in the log, in arrival order."""
        lines = self.log_path.read_text().splitlines() if self.log_path.exists() else []
        requests = []
        for line in lines:
            # A request line is "<date> <time> <METHOD> <path>", followed by the status of a failed request.
            fields = line.split()
            if len(fields) >= 4 and fields[3].startswith("/v2/"):
                requests.append(f"{fields[2]} {fields[3]}")

        return requests

    def push_chart(self, archive: pathlib.Path, project: str) -> str:
        """Upload a chart archive to ``<project>/<chart name>`` tagged with its version; return the ``oci://`` reference.

        The config blob is the chart's Chart.yaml as JSON and the single layer is the archive, as ``helm push``
        writes them.
        """
        metadata = archive_metadata(archive)
        repository = f"{project}/{metadata['name']}"
        config = json.dumps(metadata, separators=(",", ":")).encode()
        content = archive.read_bytes()
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST_MEDIA_TYPE,
            "config": self._upload_blob(repository, config, HELM_CONFIG_MEDIA_TYPE),
            "layers": [self._upload_blob(repository, content, HELM_CHART_MEDIA_TYPE)],
        }
        self._request(
            "PUT",
            f"/v2/{repository}/manifests/{metadata['version']}",
            json.dumps(manifest).encode(),
            {"Content-Type": OCI_MANIFEST_MEDIA_TYPE},
        )

        return f"oci://{self.host}/{repository}"

    def _upload_blob(self, repository: str, data: bytes, media_type: str) -> dict[str, object]:
        """Upload ``data`` in one PUT after starting an upload session; return its descriptor."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        location = self._request("POST", f"/v2/{repository}/blobs/uploads/", b"", {}).headers["Location"]
        upload = urllib.parse.urlsplit(location)
        query = "&".join(part for part in (upload.query, urllib.parse.urlencode({"digest": digest})) if part)
        self._request("PUT", f"{upload.path}?{query}", data, {"Content-Type": "application/octet-stream"})

        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def _request(self, method: str, path: str, body: bytes, headers: dict[str, str]):
        context = ssl.create_default_context(cafile=str(self.ca_file))
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        with urllib.request.urlopen(request, context=context, timeout=REQUEST_TIMEOUT_SECONDS) as response:
            response.read()
            return response

