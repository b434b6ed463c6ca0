"""Benchmark the site read: vCenter requests and wall time of read_hosts and of one passthrough device read.

Run from the repository root: ``.venv/bin/python -m bench.site_read [--hosts 1,2,8,32,64] [--repetitions 20]``.
For each host count it starts a fresh lab with two A100 GPUs per host and measures

* ``components.vsphere.read_hosts`` on an open session, which must take the same number of vCenter
  requests for any number of hosts, and
* ``PassthroughDeviceProvider.read`` for one device, which is what ``pulumi refresh`` runs per device:
  log in, read every host, log out.

The request count comes from the simulator's counter of SOAP requests. Timings are wall-clock times
of this process, so they include the simulator's work on the same machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable

from bench import common
from components import passthrough, vsphere
from lab.lab import Lab, LabError


@dataclasses.dataclass(frozen=True)
class Measurement:
    """Request counts, wall times and this process's CPU times (nanoseconds) of repeated calls of one operation."""

    requests: list[int]
    times_ns: list[int]
    cpu_ns: list[int]


@dataclasses.dataclass(frozen=True)
class SiteResult:
    hosts: int
    gpus: int
    read_hosts: Measurement
    device_read: Measurement


def measure(lab: Lab, operation: Callable[[], object], *, warmup: int, repetitions: int) -> Measurement:
    """Run ``operation`` ``warmup`` times untimed, then ``repetitions`` times with the request counter reset before each."""
    for _ in range(warmup):
        operation()

    requests, times_ns, cpu_ns = [], [], []
    for _ in range(repetitions):
        lab.reset_request_count()
        cpu_start = time.process_time_ns()
        start = time.perf_counter_ns()
        operation()
        times_ns.append(time.perf_counter_ns() - start)
        cpu_ns.append(time.process_time_ns() - cpu_start)
        requests.append(lab.request_count())

    return Measurement(requests, times_ns, cpu_ns)


def check_inventory(hosts: dict[str, vsphere.HostState], expected_hosts: int) -> list[vsphere.PciDeviceState]:
    """Return the GPUs read from the lab, raising when the read does not match the lab's size."""
    gpus = [device for host in hosts.values() for device in host.devices if device.is_gpu]
    if len(hosts) != expected_hosts or len(gpus) != 2 * expected_hosts:
        raise RuntimeError(
            f"read_hosts returned {len(hosts)} hosts with {len(gpus)} GPUs, expected {expected_hosts} hosts with {2 * expected_hosts}"
        )

    return gpus


def bench_site(host_count: int, *, warmup: int, repetitions: int) -> SiteResult:
    with common.running_lab(host_count) as (lab, password):
        connection = vsphere.Connection(
            server=lab.server, username=lab.settings.username, password=password, insecure=True
        )
        with vsphere.connect(connection) as service_instance:
            gpus = check_inventory(vsphere.read_hosts(service_instance), host_count)
            read_hosts = measure(
                lab, lambda: vsphere.read_hosts(service_instance), warmup=warmup, repetitions=repetitions
            )

        # The last host's GPU, so a read that stopped early would not find it.
        device = max(gpus, key=lambda item: (item.host, item.pci_address))
        props = {
            "host": device.host,
            "pci_address": device.pci_address,
            "enabled": True,
            "connection": {
                "server": connection.server,
                "username": connection.username,
                "password": password,
                "insecure": True,
                "thumbprint": None,
            },
            "provider_version": passthrough.PROVIDER_VERSION,
        }
        provider = passthrough.PassthroughDeviceProvider()
        device_id = f"{device.host}/{device.pci_address}"
        first = provider.read(device_id, props)
        if first.id != device_id:
            raise RuntimeError(f"PassthroughDeviceProvider.read did not find {device_id}")

        # A refresh reads with the outputs in the state, which carry the host's managed object ID.
        props = first.outs

        device_read = measure(lab, lambda: provider.read(device_id, props), warmup=warmup, repetitions=repetitions)

    return SiteResult(host_count, len(gpus), read_hosts, device_read)


def measurement_table(results: list[SiteResult], select: Callable[[SiteResult], Measurement]) -> str:
    header = [
        "Hosts",
        "GPUs",
        "vCenter requests",
        "wall median (ms)",
        "wall IQR (ms)",
        "wall min–max (ms)",
        "client CPU median (ms)",
    ]
    rows = []
    for result in results:
        measurement = select(result)
        wall = common.milliseconds(measurement.times_ns)
        q1, q3 = common.quartiles(wall)
        rows.append(
            [
                str(result.hosts),
                str(result.gpus),
                common.count_range(measurement.requests),
                f"{common.median(wall):.1f}",
                f"{q1:.1f}–{q3:.1f}",
                f"{min(wall):.1f}–{max(wall):.1f}",
                f"{common.median(common.milliseconds(measurement.cpu_ns)):.1f}",
            ]
        )

    return common.markdown_table(header, rows, [True] * len(header))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.site_read",
        description="Measure vCenter requests and wall time of the site read against the lab (two A100 GPUs per host).",
    )
    parser.add_argument(
        "--hosts", type=common.parse_host_counts, default=[1, 2, 8, 32, 64],
        help="comma-separated numbers of ESXi hosts, each 1 to 99 (default: 1,2,8,32,64)",
    )
    parser.add_argument(
        "--repetitions", type=common.positive_int, default=20,
        help="timed calls per operation and host count (default: 20)",
    )
    parser.add_argument(
        "--warmup", type=common.non_negative_int, default=3,
        help="untimed calls before the timed ones (default: 3)",
    )
    args = parser.parse_args(argv)

    common.add_tool_paths()
    load = common.LoadMonitor().start()
    results = []
    try:
        for host_count in args.hosts:
            common.progress(f"{host_count} hosts: starting the lab, {args.warmup} warm-up and {args.repetitions} timed calls per operation")
            results.append(bench_site(host_count, warmup=args.warmup, repetitions=args.repetitions))
    except (LabError, vsphere.VSphereError, RuntimeError) as error:
        print(f"site read benchmark failed: {error}", file=sys.stderr)
        return 1

    print("components.vsphere.read_hosts on an open session:")
    print()
    print(measurement_table(results, lambda result: result.read_hosts))
    print()
    print("PassthroughDeviceProvider.read of one device as a refresh makes it (login, read_host, logout):")
    print()
    print(measurement_table(results, lambda result: result.device_read))
    print()
    print("Client CPU is this Python process's CPU time; the rest of the wall time is the simulator, the loopback and waiting for a free core.")
    print()
    print(f"{args.repetitions} timed calls after {args.warmup} warm-up calls per cell; {load.summary()}.")
    print(common.software_summary() + ".")

    return 0


if __name__ == "__main__":
    sys.exit(main())
