"""An HTTP Helm chart repository on 127.0.0.1 for tests: chart archives and their index.yaml, served in a thread.

``package_chart`` writes a chart directory as ``<name>-<version>.tgz`` with the layout of ``helm package`` (every
file under one top directory named after the chart). ``write_index`` writes the repository's ``index.yaml``
(apiVersion v1) with one entry per archive. ``ChartRepository`` serves a directory with ``http.server`` on a port
that the kernel picks, records the path of every request, and stops when its ``with`` block ends::

    package_chart(chart_dir, repo_dir)
    write_index(repo_dir)
    with ChartRepository(repo_dir) as repository:
        ...  # gpuOperator.chart.repository: repository.url
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import http.server
import io
import pathlib
import tarfile
import threading

import yaml

INDEX_NAME = "index.yaml"


def package_chart(chart_dir: pathlib.Path, target_dir: pathlib.Path) -> pathlib.Path:
    """Write ``chart_dir`` as a gzipped tar ``<name>-<version>.tgz`` in ``target_dir`` and return its path.

    The name and version come from the chart's Chart.yaml. Files are added in sorted order with their modes,
    owned by root, and hidden files are left out. The chart's ``.helmignore`` is not applied.
    """
    metadata = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    name, version = metadata["name"], metadata["version"]
    target_dir.mkdir(parents=True, exist_ok=True)
    archive = target_dir / f"{name}-{version}.tgz"

    files = sorted(
        path
        for path in chart_dir.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(chart_dir).parts)
    )
    with tarfile.open(archive, "w:gz") as tar:
        for path in files:
            member = tar.gettarinfo(path, arcname=f"{name}/{path.relative_to(chart_dir).as_posix()}")
            member.uid = member.gid = 0
            member.uname = member.gname = "root"
            with path.open("rb") as content:
                tar.addfile(member, content)

    return archive


def write_index(repo_dir: pathlib.Path) -> pathlib.Path:
    """Write ``index.yaml`` for every ``*.tgz`` chart archive in ``repo_dir`` and return its path.

    Each entry contains the fields of the archive's Chart.yaml, as ``helm repo index`` writes them, plus ``urls``
    (the archive's file name, which Helm resolves against the repository URL), ``digest`` (SHA-256 of the
    archive) and ``created``. Relative URLs keep the index valid whatever port the repository is served on.
    """
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    entries: dict[str, list[dict[str, object]]] = {}
    for archive in sorted(repo_dir.glob("*.tgz")):
        metadata = archive_metadata(archive)
        entry = {
            **metadata,
            "urls": [archive.name],
            "digest": hashlib.sha256(archive.read_bytes()).hexdigest(),
            "created": now,
        }
        entries.setdefault(metadata["name"], []).append(entry)

    index = repo_dir / INDEX_NAME
    index.write_text(yaml.safe_dump({"apiVersion": "v1", "entries": entries, "generated": now}, sort_keys=False))

    return index


def archive_metadata(archive: pathlib.Path) -> dict[str, object]:
    """Return the Chart.yaml of a chart archive, read from ``<top directory>/Chart.yaml``."""
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            if len(parts) == 2 and parts[1] == "Chart.yaml" and member.isfile():
                content = tar.extractfile(member)
                assert content is not None, "a regular file member has content"
                return yaml.safe_load(io.TextIOWrapper(content, encoding="utf-8"))

    raise ValueError(f"{archive}: no <chart>/Chart.yaml in the archive; write it with package_chart")


class _RecordingHandler(http.server.SimpleHTTPRequestHandler):
    """Serve files of one directory, append each request path to ``requests`` and write no access log."""

    def __init__(self, *args: object, requests: list[str], **kwargs: object) -> None:
        self._requests = requests
        super().__init__(*args, **kwargs)

    def send_head(self):
        self._requests.append(self.path)
        return super().send_head()

    def log_message(self, format: str, *args: object) -> None:
        pass


class ChartRepository:
    """A thread that serves ``directory`` over HTTP on 127.0.0.1, on a free port chosen when it starts."""

    def __init__(self, directory: pathlib.Path) -> None:
        self.directory = directory
        self.requests: list[str] = []
        """Request paths (GET and HEAD) in arrival order, such as ``/index.yaml``."""
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Repository URL for ``helm repo add`` or ``gpuOperator.chart.repository``: ``http://127.0.0.1:<port>``."""
        if self._server is None:
            raise RuntimeError("the chart repository is not started; call start() first")

        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ChartRepository:
        handler = functools.partial(_RecordingHandler, directory=str(self.directory), requests=self.requests)
        # Port 0 lets the kernel pick a free port at bind time, so no other program can take it in between.
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="chart-repository", daemon=True)
        self._thread.start()

        return self

    def stop(self) -> None:
        if self._server is None:
            return

        self._server.shutdown()
        self._server.server_close()
        assert self._thread is not None
        self._thread.join()
        self._server = None
        self._thread = None

    def __enter__(self) -> ChartRepository:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
