"""What one node call costs in gRPC alone: unary calls against a persistent stream.

A mesh round of the default model is two node calls (one per part, on two nodes); beyond
the circuits themselves each call pays a fixed price in gRPC (call set-up, HTTP/2 frames,
TLS records, the server's hand-off from its polling thread to a worker) on both sides.
This measures that price with the engine left out: a server (``grpc.server``, like the
node's) answers every message of the default model's size (a 40-row Jacobian request
~7.5 KB, its reply ~7.6 KB) at once, in a separate process, and the client sends them
one after another:

- ``unary`` -- one call per message, as the mesh does today, from a blocking stub and
  from an asyncio stub (the mesh's);
- ``stream`` -- one bidirectional stream kept open, one message each way per request:
  what a persistent per-node session would cost instead.

For each it prints the median round trip and the CPU per message of the server process
and of the client, in plaintext and with mutual TLS (certificates made for the run).

Usage:
    python benchmarks/bench_transport.py [--messages 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import grpc.aio
from proc_cpu import cpu_seconds

from qpumesh.client.certs import make_certificates
from qpumesh.wire.channels import bind, open_aio_channel, open_channel
from qpumesh.wire.tls import TlsConfig, load_tls

REQUEST = b"q" * 7462
"""The size of the default model's ShiftGradient request (40 rows, circuit by hash)."""
REPLY = b"r" * 7584
"""The size of its reply (Jacobian and expectations)."""
SERVICE, UNARY, STREAM = "bench.Transport", "Call", "Session"


def _serve(port_file: Path, certs: Path | None) -> None:
    """Run the echo server until killed; write its port to ``port_file``."""

    def session(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        for _ in requests:
            yield REPLY

    handlers = {
        UNARY: grpc.unary_unary_rpc_method_handler(lambda request, context: REPLY),
        STREAM: grpc.stream_stream_rpc_method_handler(session),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    tls = None if certs is None else load_tls(certs / "server.crt", certs / "server.key", certs / "ca.crt")
    port = bind(server, "127.0.0.1:0", tls)
    server.start()
    port_file.write_text(str(port), encoding="ascii")
    server.wait_for_termination()


def _raw(message: bytes) -> bytes:
    """The messages are bytes already: no (de)serialisation."""
    return message


class _Meter:
    """Round trips of one mode, and the CPU both processes spent on them."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.trips: list[float] = []

    def __enter__(self) -> _Meter:
        self.server_cpu, self.client_cpu = cpu_seconds(self.server_pid), time.process_time()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server_cpu = cpu_seconds(self.server_pid) - self.server_cpu
        self.client_cpu = time.process_time() - self.client_cpu

    def line(self, name: str) -> str:
        n = len(self.trips)
        return (
            f"{name:<32} {1000 * statistics.median(self.trips):>8.3f} "
            f"{1e6 * self.server_cpu / n:>12.0f} {1e6 * self.client_cpu / n:>12.0f}"
        )


def _blocking(address: str, tls: TlsConfig | None, pid: int, messages: int) -> str:
    channel = open_channel(address, tls=tls)
    call = channel.unary_unary(f"/{SERVICE}/{UNARY}", _raw, _raw)
    for _ in range(100):
        call(REQUEST, timeout=10)
    with _Meter(pid) as meter:
        for _ in range(messages):
            start = time.perf_counter()
            call(REQUEST, timeout=10)
            meter.trips.append(time.perf_counter() - start)
    channel.close()
    return meter.line("unary, blocking stub")


async def _asyncio(address: str, tls: TlsConfig | None, pid: int, messages: int) -> list[str]:
    channel = open_aio_channel(address, tls=tls)
    call = channel.unary_unary(f"/{SERVICE}/{UNARY}", _raw, _raw)
    for _ in range(100):
        await call(REQUEST, timeout=10)
    with _Meter(pid) as unary:
        for _ in range(messages):
            start = time.perf_counter()
            await call(REQUEST, timeout=10)
            unary.trips.append(time.perf_counter() - start)
    session = channel.stream_stream(f"/{SERVICE}/{STREAM}", _raw, _raw)(None)
    for _ in range(100):
        await session.write(REQUEST)
        await session.read()
    with _Meter(pid) as stream:
        for _ in range(messages):
            start = time.perf_counter()
            await session.write(REQUEST)
            await session.read()
            stream.trips.append(time.perf_counter() - start)
    await session.done_writing()
    await channel.close(None)
    return [unary.line("unary, asyncio stub (the mesh's)"), stream.line("stream, asyncio, one per node")]


def _measure(certs: Path | None, messages: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        port_file = Path(directory) / "port"
        argv = [sys.executable, __file__, "--serve", str(port_file)]
        server = subprocess.Popen([*argv, *(["--certs", str(certs)] if certs else [])])
        try:
            while not port_file.exists() or not port_file.read_text(encoding="ascii"):
                time.sleep(0.05)
            address = f"127.0.0.1:{port_file.read_text(encoding='ascii')}"
            tls = None
            if certs is not None:
                tls = load_tls(certs / "client.crt", certs / "client.key", certs / "ca.crt")
            print(_blocking(address, tls, server.pid, messages), flush=True)
            for line in asyncio.run(_asyncio(address, tls, server.pid, messages)):
                print(line, flush=True)
        finally:
            server.kill()
            server.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=3000, help="messages per mode (after 100 to warm up)")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--certs", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        _serve(args.serve, args.certs)
        return 0
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"# load average {load}; {len(REQUEST)} B out, {len(REPLY)} B back per message")
    print(f"{'mode':<32} {'trip ms':>8} {'server µs':>12} {'client µs':>12}")
    print("## plaintext")
    _measure(None, args.messages)
    with tempfile.TemporaryDirectory() as certs:
        make_certificates(certs)
        print("## mutual TLS")
        _measure(Path(certs), args.messages)
    return 0


if __name__ == "__main__":
    sys.exit(main())
