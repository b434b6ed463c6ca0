"""vCenter endpoint settings without pyVmomi, so commands that never call vCenter start fast."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import CliError


class EndpointError(CliError):
    """VSPHERE_SERVER cannot be parsed."""


@dataclass(frozen=True)
class Connection:
    """Non-secret connection settings, as stored in a cluster record."""

    server: str
    insecure: bool
    thumbprint: str | None

    def to_record(self) -> dict[str, object]:
        return {"server": self.server, "insecure": self.insecure, "thumbprint": self.thumbprint}

    @classmethod
    def from_record(cls, data: dict) -> "Connection":
        return cls(data["server"], bool(data.get("insecure")), data.get("thumbprint"))


def split_server(server: str) -> tuple[str, int]:
    """Split VSPHERE_SERVER (`host`, `host:port`, `[v6]:port` or an https URL) into host and port."""
    text = server.strip()
    if "://" in text:
        text = text.split("://", 1)[1]
    text = text.split("/", 1)[0]
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    if not host:
        raise EndpointError(f"invalid VSPHERE_SERVER {server!r}: no host name")
    try:
        port = int(port_text) if port_text else 443
    except ValueError:
        raise EndpointError(f"invalid VSPHERE_SERVER {server!r}: port is not a number") from None
    return host, port
