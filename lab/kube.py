"""Kubernetes control planes for the lab: etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok.

Every process listens on 127.0.0.1 only, on free ports, with certificates from a private CA made for each
start. kwok plays the kubelet of fake nodes (annotation ``kwok.x-k8s.io/node: fake``): it moves their Pods
through the stages in ``lab/kwok/`` and serves container logs, which the API server proxies for ``pods/log``.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import ipaddress
import json
import os
import pathlib
import select
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ROOT = pathlib.Path(__file__).resolve().parent.parent
KWOK_DIR = ROOT / "lab" / "kwok"

FAKE_NODE_ANNOTATION = "kwok.x-k8s.io/node"
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
KUBERNETES_SERVICE_IP = "10.0.0.1"
START_TIMEOUT_SECONDS = 90
STOP_TIMEOUT_SECONDS = 20
KILL_TIMEOUT_SECONDS = 5
CERTIFICATE_LIFETIME = datetime.timedelta(days=30)
CONTAINER_LOGS_NAME = "lab-container-logs"


class LabError(RuntimeError):
    """The lab could not start, or one of its processes failed."""


@dataclasses.dataclass(frozen=True)
class ProcessRecord:
    """A process the lab started, as recorded in ``.lab/lab.json`` so another command can stop it."""

    component: str
    pid: int
    executable: str
    """Resolved path of the program; a PID whose /proc/PID/exe differs belongs to another process."""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProcessRecord:
        return cls(component=str(data["component"]), pid=int(data["pid"]), executable=str(data["executable"]))


def is_running(record: ProcessRecord) -> bool:
    """Return whether the recorded process still runs: same PID and executable, and not a zombie."""
    try:
        executable = os.readlink(f"/proc/{record.pid}/exe")
        stat = pathlib.Path(f"/proc/{record.pid}/stat").read_text()
    except OSError:
        return False

    # The state letter follows the parenthesised command name, which may itself contain spaces.
    state = stat.rsplit(")", 1)[1].split()[0]
    return executable.removesuffix(" (deleted)") == record.executable and state != "Z"


def stop_process(record: ProcessRecord, process: subprocess.Popen[bytes] | None = None) -> None:
    """Send SIGTERM to one recorded process, then SIGKILL when it has not exited after STOP_TIMEOUT_SECONDS.

    ``process`` is the Popen object when this Python process started it, so that its exit status is reaped.
    """
    if process is not None and process.poll() is not None:
        return

    if not is_running(record):
        if process is not None:
            process.wait()
        return

    os.kill(record.pid, signal.SIGTERM)
    if _wait_exit(record, process, STOP_TIMEOUT_SECONDS):
        return

    try:
        os.kill(record.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if not _wait_exit(record, process, KILL_TIMEOUT_SECONDS):
        raise LabError(f"{record.component} (pid {record.pid}) did not exit after SIGKILL")


def _wait_exit(record: ProcessRecord, process: subprocess.Popen[bytes] | None, timeout: float) -> bool:
    if process is not None:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    deadline = time.monotonic() + timeout
    while is_running(record):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)

    return True


def stop_processes(records: list[ProcessRecord]) -> None:
    """Stop recorded processes in reverse start order, each by its PID."""
    for record in reversed(records):
        stop_process(record)


def start_with_ready_line(
    component: str, command: list[str], log_path: pathlib.Path, environment: dict[str, str], timeout: float
) -> tuple[subprocess.Popen[bytes], ProcessRecord, dict[str, Any]]:
    """Start a lab program that prints one JSON ready line on stdout; return the process, its record and that line.

    The program's stderr is appended to ``log_path``. A program that prints no line within ``timeout`` seconds is
    killed, and one that exits first is reported with its exit code.
    """
    log = open(log_path, "ab")  # noqa: SIM115 - kept open for the child's lifetime
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, env=environment, start_new_session=True
    )
    log.close()
    record = ProcessRecord(component, process.pid, os.path.realpath(command[0]))
    assert process.stdout is not None
    ready, _writable, _errors = select.select([process.stdout], [], [], timeout)
    if not ready:
        process.kill()
        process.wait()
        raise LabError(f"{component} printed no ready line within {timeout} s; see {log_path}")

    line = process.stdout.readline()
    if not line:
        process.wait(timeout=timeout)
        raise LabError(f"{component} exited with code {process.returncode} before serving; see {log_path}")

    return process, record, json.loads(line)


def find_tool(name: str) -> str:
    """Return the path of the lab program ``name`` on PATH, or raise LabError with the way to put it there."""
    executable = shutil.which(name)
    if executable is None:
        raise LabError(
            f"{name} not found on PATH: `make tools` builds it into $TKG_GPU_CACHE/bin (by default "
            f"~/.cache/tkg-gpu/bin), and the Makefile's targets put that directory on PATH; outside them, add it yourself"
        )

    return executable


def free_port() -> int:
    """Return a port that is free on 127.0.0.1 now; another program may take it before the caller binds it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _write_private(path: pathlib.Path, data: bytes) -> None:
    """Write ``data`` to a new file that only the owner can read (mode 0600 from creation on)."""
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _issue(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    usages: list[x509.ObjectIdentifier] | None = None,
    names: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + CERTIFICATE_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True
        )
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)

    return builder.sign(issuer_key, hashes.SHA256())


def _write_ca(pki: pathlib.Path, common_name: str) -> tuple[x509.Name, ec.EllipticCurvePrivateKey]:
    """Create the private directory ``pki`` with a new CA in ``ca.crt`` and ``ca.key``; return its name and key."""
    pki.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(pki, 0o700)

    ca_key = _new_key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    ca = _issue(ca_name, ca_key, ca_name, ca_key, ca=True)
    _write_private(pki / "ca.crt", ca.public_bytes(serialization.Encoding.PEM))
    _write_private(pki / "ca.key", _key_pem(ca_key))

    return ca_name, ca_key


def _write_leaf(
    pki: pathlib.Path,
    stem: str,
    subject: x509.Name,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey],
    usages: list[x509.ObjectIdentifier],
    names: list[x509.GeneralName] | None,
) -> None:
    """Issue a certificate with a new key from ``issuer`` and write ``<stem>.crt`` and ``<stem>.key``."""
    key = _new_key()
    certificate = _issue(subject, key, *issuer, usages=usages, names=names)
    _write_private(pki / f"{stem}.crt", certificate.public_bytes(serialization.Encoding.PEM))
    _write_private(pki / f"{stem}.key", _key_pem(key))


LOOPBACK_NAMES: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]


def write_loopback_tls(pki: pathlib.Path, name: str) -> None:
    """Create a CA (``ca.crt``) and a serving certificate for 127.0.0.1 (``server.crt``, ``server.key``) in ``pki``."""
    issuer = _write_ca(pki, f"tkg-gpu-lab-{name}-ca")
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    _write_leaf(pki, "server", subject, issuer, [ExtendedKeyUsageOID.SERVER_AUTH], LOOPBACK_NAMES)


def write_pki(pki: pathlib.Path, plane_name: str) -> None:
    """Create the CA, the serving and client certificates, and the service-account key pair (files 0600)."""
    issuer = _write_ca(pki, f"tkg-gpu-lab-{plane_name}-ca")

    apiserver_names = LOOPBACK_NAMES + [
        x509.IPAddress(ipaddress.ip_address(KUBERNETES_SERVICE_IP)),
        x509.DNSName("kubernetes"),
        x509.DNSName("kubernetes.default"),
        x509.DNSName("kubernetes.default.svc"),
        x509.DNSName("kubernetes.default.svc.cluster.local"),
    ]
    leaves = {
        # file stem: (common name, organization, extended key usages, subject alternative names)
        "apiserver": ("kube-apiserver", None, [ExtendedKeyUsageOID.SERVER_AUTH], apiserver_names),
        "admin": ("tkg-gpu-lab-admin", "system:masters", [ExtendedKeyUsageOID.CLIENT_AUTH], None),
        "apiserver-kubelet-client": (
            "kube-apiserver-kubelet-client", "system:masters", [ExtendedKeyUsageOID.CLIENT_AUTH], None,
        ),
        "kwok": ("kwok", None, [ExtendedKeyUsageOID.SERVER_AUTH], LOOPBACK_NAMES),
    }
    for stem, (common_name, organization, usages, names) in leaves.items():
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        if organization:
            attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
        _write_leaf(pki, stem, x509.Name(attributes), issuer, usages, names)

    service_account_key = _new_key()
    _write_private(pki / "sa.key", _key_pem(service_account_key))
    _write_private(
        pki / "sa.pub",
        service_account_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )


def admin_kubeconfig(plane_name: str, server: str, pki: pathlib.Path) -> str:
    """Return a self-contained admin kubeconfig (certificates and key embedded as base64 data)."""

    def encoded(path: pathlib.Path) -> str:
        return base64.b64encode(path.read_bytes()).decode()

    context = f"tkg-gpu-lab-{plane_name}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": context, "cluster": {"server": server, "certificate-authority-data": encoded(pki / "ca.crt")}}
        ],
        "users": [
            {
                "name": f"{context}-admin",
                "user": {
                    "client-certificate-data": encoded(pki / "admin.crt"),
                    "client-key-data": encoded(pki / "admin.key"),
                },
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": context, "user": f"{context}-admin"}}],
        "current-context": context,
    }
    return yaml.safe_dump(config, sort_keys=False)


def load_documents(path: pathlib.Path) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def cri_log(text: str, timestamp: datetime.datetime) -> str:
    """Format container output as a CRI log file, the format kwok's log server reads (one stdout line each)."""
    stamp = timestamp.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")
    return "".join(f"{stamp} stdout F {line}\n" for line in text.splitlines())


class ControlPlane:
    """One Kubernetes control plane with kwok, started and stopped as a unit.

    ``ControlPlane(name, state_dir)`` for a plane that another process started (``python -m lab start``)
    reads its server from the kubeconfig on disk, so ``api_client()`` and ``set_cuda_fail()`` work on it.
    """

    COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")

    def __init__(self, name: str, state_dir: pathlib.Path) -> None:
        self.name = name
        self.state_dir = state_dir
        self.pki = state_dir / "pki"
        """Directory (0700) of the CA, certificates and keys, each file 0600."""
        self.log_dir = state_dir / "logs"
        self.kwok_dir = state_dir / "kwok"
        self.server = ""
        self._processes: list[tuple[ProcessRecord, subprocess.Popen[bytes]]] = []
        if self.kubeconfig_path.exists():
            self.server = yaml.safe_load(self.kubeconfig_path.read_text())["clusters"][0]["cluster"]["server"]

    @property
    def kubeconfig_path(self) -> pathlib.Path:
        return self.state_dir / "admin.kubeconfig"

    @property
    def records(self) -> list[ProcessRecord]:
        return [record for record, _process in self._processes]

    @property
    def pids(self) -> list[int]:
        return [record.pid for record in self.records]

    def log_path(self, component: str) -> pathlib.Path:
        return self.log_dir / f"{component}.log"

    def start(self) -> ControlPlane:
        """Start the five processes in order; on any failure stop those already started and raise LabError."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

        return self

    def stop(self) -> None:
        """Stop the processes in reverse start order, then delete the keys, the kubeconfig and etcd's data."""
        try:
            for record, process in reversed(self._processes):
                stop_process(record, process)
        finally:
            self._processes.clear()
            self.remove_secrets()

    def remove_secrets(self) -> None:
        """Delete the key material and etcd's data, which contains the Secrets. Logs stay for debugging."""
        shutil.rmtree(self.pki, ignore_errors=True)
        shutil.rmtree(self.state_dir / "etcd", ignore_errors=True)
        self.kubeconfig_path.unlink(missing_ok=True)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _start(self) -> None:
        for component in self.COMPONENTS:
            find_tool(component)

        self.remove_secrets()
        shutil.rmtree(self.kwok_dir, ignore_errors=True)
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        self.log_dir.mkdir(exist_ok=True)
        self.kwok_dir.mkdir()

        port_names = ("etcd-client", "etcd-peer", "apiserver", "controller-manager", "scheduler", "kwok")
        ports = {name: free_port() for name in port_names}
        write_pki(self.pki, self.name)
        self.server = f"https://127.0.0.1:{ports['apiserver']}"
        _write_private(self.kubeconfig_path, admin_kubeconfig(self.name, self.server, self.pki).encode())

        self._start_etcd(ports["etcd-client"], ports["etcd-peer"])
        self._start_apiserver(ports["apiserver"], ports["etcd-client"])
        self._install_kwok_resources()
        self._start_controller_manager(ports["controller-manager"])
        self._start_scheduler(ports["scheduler"])
        self._start_kwok(ports["kwok"])

    def _spawn(self, component: str, arguments: list[str], environment: dict[str, str] | None = None) -> None:
        executable = shutil.which(component)
        assert executable is not None
        with open(self.log_path(component), "wb") as log:
            process = subprocess.Popen(
                [executable, *arguments],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
                start_new_session=True,
            )
        record = ProcessRecord(f"{self.name}/{component}", process.pid, os.path.realpath(executable))
        self._processes.append((record, process))

    def _wait_ready(self, component: str, probe: Callable[[], bool], timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Poll ``probe`` until it returns true; fail early when the component's process exits."""
        record, process = self._processes[-1]
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise LabError(
                    f"{component} of the {self.name} control plane exited with code {process.returncode} "
                    f"during start-up; see {self.log_path(component)}"
                )
            if probe():
                return
            if time.monotonic() > deadline:
                raise LabError(
                    f"{component} of the {self.name} control plane (pid {record.pid}) was not ready within "
                    f"{timeout:.0f} s; see {self.log_path(component)}"
                )
            time.sleep(0.3)

    def _admin_ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        context.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return context

    @staticmethod
    def _responds_ok(url: str, context: ssl.SSLContext | None = None, expected: bytes = b"ok") -> bool:
        try:
            with urllib.request.urlopen(url, context=context, timeout=5) as response:
                return expected in response.read()
        except (OSError, urllib.error.URLError):
            return False

    def _start_etcd(self, client_port: int, peer_port: int) -> None:
        client_url = f"http://127.0.0.1:{client_port}"
        peer_url = f"http://127.0.0.1:{peer_port}"
        self._spawn(
            "etcd",
            [
                f"--name={self.name}",
                f"--data-dir={self.state_dir / 'etcd'}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster={self.name}={peer_url}",
                # The lab's data is thrown away at stop, so skipping fsync costs nothing.
                "--unsafe-no-fsync",
                "--quota-backend-bytes=268435456",
            ],
        )
        self._wait_ready("etcd", lambda: self._responds_ok(f"{client_url}/health", expected=b'"health":"true"'))

    def _start_apiserver(self, port: int, etcd_port: int) -> None:
        pki = self.pki
        self._spawn(
            "kube-apiserver",
            [
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={pki}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                "--authorization-mode=RBAC",
                "--allow-privileged=true",
                "--endpoint-reconciler-type=none",
                # This plug-in taints every new node not-ready, and only the node lifecycle controller removes
                # that taint. That controller is off (see kube-controller-manager), so the taint would stay.
                "--disable-admission-plugins=TaintNodesByCondition",
                # The API server sends pods/log, exec and port-forward to the node's InternalIP and kubelet
                # port. kwok's node stage sets both to kwok's own 127.0.0.1 listener, whose certificate the
                # API server checks against the plane's CA.
                "--kubelet-preferred-address-types=InternalIP",
                f"--kubelet-certificate-authority={pki / 'ca.crt'}",
                f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            ],
        )
        context = self._admin_ssl_context()
        self._wait_ready("kube-apiserver", lambda: self._responds_ok(f"{self.server}/readyz", context))

    def _control_loop_args(self, port: int) -> list[str]:
        """Flags the controller-manager and the scheduler share: admin kubeconfig, one instance, loopback only."""
        kubeconfig = self.kubeconfig_path
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
        ]

    def _start_controller_manager(self, port: int) -> None:
        self._spawn(
            "kube-controller-manager",
            [
                *self._control_loop_args(port),
                f"--service-account-private-key-file={self.pki / 'sa.key'}",
                f"--root-ca-file={self.pki / 'ca.crt'}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                # kwok renews no node heartbeats in this lab, so the node lifecycle controller would mark
                # every fake node NotReady after its grace period and evict the Pods.
                "--controllers=*,-node-lifecycle-controller",
            ],
        )
        health_url = f"https://127.0.0.1:{port}/healthz"
        self._wait_ready("kube-controller-manager", lambda: self._responds_ok(health_url, _insecure_context()))

    def _start_scheduler(self, port: int) -> None:
        self._spawn("kube-scheduler", self._control_loop_args(port))
        health_url = f"https://127.0.0.1:{port}/healthz"
        self._wait_ready("kube-scheduler", lambda: self._responds_ok(health_url, _insecure_context()))

    def _start_kwok(self, port: int) -> None:
        home = self.kwok_dir / "home"
        home.mkdir()
        self._spawn(
            "kwok",
            [
                f"--kubeconfig={self.kubeconfig_path}",
                f"--manage-nodes-with-annotation-selector={FAKE_NODE_ANNOTATION}=fake",
                "--node-ip=127.0.0.1",
                f"--node-port={port}",
                f"--server-address=127.0.0.1:{port}",
                f"--tls-cert-file={self.pki / 'kwok.crt'}",
                f"--tls-private-key-file={self.pki / 'kwok.key'}",
                # Stages and container logs come from objects in the API server, which kwok watches, so
                # the lab's switches change them while kwok runs.
                "--enable-crds=Stage,ClusterLogs",
                # Without leases kwok manages a node's Pods as soon as the node appears.
                "--node-lease-duration-seconds=0",
            ],
            # kwok also reads $HOME/.kwok/kwok.yaml when it exists, so an empty home keeps a user's file out.
            environment={**os.environ, "HOME": str(home)},
        )
        self._wait_ready("kwok", lambda: self._responds_ok(f"http://127.0.0.1:{port}/healthz"))

    # Objects in the API server

    def api_client(self):  # -> kubernetes.client.ApiClient
        """Return a client of the official Kubernetes library that uses the plane's admin certificate files."""
        import kubernetes.client

        configuration = kubernetes.client.Configuration()
        configuration.host = self.server
        configuration.ssl_ca_cert = str(self.pki / "ca.crt")
        configuration.cert_file = str(self.pki / "admin.crt")
        configuration.key_file = str(self.pki / "admin.key")
        return kubernetes.client.ApiClient(configuration)

    def install_crds(self, path: pathlib.Path) -> None:
        """Create the CustomResourceDefinitions in a YAML file and wait until the API server serves them."""
        import kubernetes.client

        with self.api_client() as client:
            extensions = kubernetes.client.ApiextensionsV1Api(client)
            names = []
            for document in load_documents(path):
                extensions.create_custom_resource_definition(document)
                names.append(document["metadata"]["name"])

            def established() -> bool:
                for name in names:
                    conditions = extensions.read_custom_resource_definition(name).status.conditions or []
                    if not any(c.type == "Established" and c.status == "True" for c in conditions):
                        return False
                return True

            wait_for(established, timeout=30, interval=0.3, message=f"the CustomResourceDefinitions in {path.name} to be established")

    def create_objects(self, path: pathlib.Path, field_manager: str | None = None) -> None:
        """Create the objects in a YAML file (built-in kinds and custom resources)."""
        import kubernetes.client
        import kubernetes.utils

        with self.api_client() as client:
            custom = kubernetes.client.CustomObjectsApi(client)
            for document in load_documents(path):
                group = document["apiVersion"].rpartition("/")[0]
                if _is_built_in(group):
                    kubernetes.utils.create_from_dict(client, document, field_manager=field_manager)
                else:
                    self._create_custom_object(custom, document, field_manager)

    def _create_custom_object(self, custom: Any, document: dict[str, Any], field_manager: str | None) -> None:
        group, version = document["apiVersion"].split("/")
        plural = _plural(document["kind"])
        namespace = document["metadata"].get("namespace")
        if namespace:
            custom.create_namespaced_custom_object(
                group, version, namespace, plural, document, field_manager=field_manager
            )
        else:
            custom.create_cluster_custom_object(group, version, plural, document, field_manager=field_manager)

    def _replace_cluster_object(self, document: dict[str, Any]) -> None:
        """Replace a cluster-scoped custom object by name, creating it when it does not exist."""
        import kubernetes.client

        group, version = document["apiVersion"].split("/")
        plural = _plural(document["kind"])
        name = document["metadata"]["name"]
        with self.api_client() as client:
            custom = kubernetes.client.CustomObjectsApi(client)
            try:
                current = custom.get_cluster_custom_object(group, version, plural, name)
            except kubernetes.client.ApiException as error:
                if error.status != 404:
                    raise
                custom.create_cluster_custom_object(group, version, plural, document)
                return

            metadata = {**document["metadata"], "resourceVersion": current["metadata"]["resourceVersion"]}
            replacement = {**document, "metadata": metadata}
            custom.replace_cluster_custom_object(group, version, plural, name, replacement)

    def _install_kwok_resources(self) -> None:
        """Install kwok's Stage and ClusterLogs kinds, the lab's stages, and the container log files."""
        now = datetime.datetime.now(datetime.timezone.utc)
        for outcome in ("passed", "failed"):
            text = (KWOK_DIR / f"cuda-vector-add-{outcome}.txt").read_text()
            (self.kwok_dir / f"cuda-vector-add-{outcome}.log").write_text(cri_log(text, now))

        self.install_crds(KWOK_DIR / "crds.yaml")
        self.create_objects(KWOK_DIR / "stages.yaml")
        self._apply_cuda_outcome(failed=False)

    def set_cuda_fail(self, on: bool) -> None:
        """Make cuda-vector-add Pods that start from now on fail (``on``) or pass, with the matching log.

        The lab replaces two objects that kwok watches: the Stage for Pods labelled
        ``app.kubernetes.io/name=cuda-vector-add`` (phase Succeeded and exit code 0, or Failed and exit
        code 1) and the ClusterLogs object that names the log file. kwok's ClusterLogs select Pods by name and
        namespace only, not by label, so every container on a fake node serves this one log.
        """
        self._apply_cuda_outcome(failed=on)
        # NOTE: kwok picks up the change from its watch, normally within a fraction of a second. A Pod that
        # kwok handles before then still gets the previous outcome, and the 1 s wait is an estimate.
        time.sleep(1)

    def _apply_cuda_outcome(self, *, failed: bool) -> None:
        outcome = "failed" if failed else "passed"
        stage = load_documents(KWOK_DIR / f"cuda-vector-add-{'failed' if failed else 'succeeded'}.yaml")[0]
        logs = {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "ClusterLogs",
            "metadata": {"name": CONTAINER_LOGS_NAME},
            "spec": {"logs": [{"logsFile": str(self.kwok_dir / f"cuda-vector-add-{outcome}.log")}]},
        }
        self._replace_cluster_object(logs)
        self._replace_cluster_object(stage)


def _is_built_in(group: str) -> bool:
    """Return whether an API group is one of Kubernetes' own ("", apps, rbac.authorization.k8s.io, ...)."""
    return "." not in group or (group.endswith(".k8s.io") and not group.endswith(".x-k8s.io"))


def _plural(kind: str) -> str:
    """Return the resource name of a custom kind; the rule fits the lab's kinds (Stage, ClusterLogs, Cluster, ...)."""
    lowered = kind.lower()
    return lowered if lowered.endswith("s") else f"{lowered}s"


def _insecure_context() -> ssl.SSLContext:
    """TLS context for the health checks of kube-controller-manager and kube-scheduler on 127.0.0.1.

    Both serve a self-signed certificate that they generate in memory, so there is no CA to check it with.
    """
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def wait_for(condition: Callable[[], bool], *, timeout: float, interval: float = 0.5, message: str = "condition") -> None:
    """Poll ``condition`` until it returns true, raising LabError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {timeout:.0f} s waiting for {message}")

        time.sleep(interval)
