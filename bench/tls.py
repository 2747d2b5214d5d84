"""``python -m bench.tls``: the get/put workloads over TLS beside plaintext, in one run, for our
client and grpcio's aio channel (called directly, as ``bench/grpc_unary.py`` does).

Starts one etcd with a TLS listener and a plaintext one (certificates from ``trustme``). By
default it also passes ``--listen-client-http-urls``, so that etcd's own gRPC server answers on
both listeners; ``--shared-http`` leaves it out, and then etcd 3.5 serves gRPC over TLS through
Go's ``net/http`` server (``ServeHTTP``), which costs etcd far more per call than its gRPC
server (etcd-io/etcd#15402) and so measures etcd more than the clients. Every run is a fresh
worker process; within a round each client runs each workload in turn, so a noisy neighbour
hurts them alike.

    python -m bench.tls [--rounds 3] [--seconds 2] [--pypy PATH] [--shared-http] [WORKLOAD ...]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from bench.__main__ import Contender, record, run_one, spread

WORKLOADS = ["get_seq", "put_seq", "get_c128", "put_c128"]


def start_etcd(directory: str, *, shared_http: bool) -> tuple[object, str, str]:
    """An etcd serving TLS and plaintext; returns it, the TLS URL (with its CA) and the
    plaintext endpoint."""
    import trustme

    from puregrpc_etcd.testing import EtcdServer, find_etcd

    ca = trustme.CA()
    certificate = ca.issue_cert("127.0.0.1", "localhost")
    paths = {name: os.path.join(directory, name) for name in ("ca", "cert", "key")}
    ca.cert_pem.write_to_path(paths["ca"])
    certificate.cert_chain_pems[0].write_to_path(paths["cert"])
    certificate.private_key_pem.write_to_path(paths["key"])
    ports = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports.append(probe.getsockname()[1])
    tls_args = ["--cert-file", paths["cert"], "--key-file", paths["key"]]
    server = EtcdServer(scheme="https", args=[*tls_args, "--quota-backend-bytes", str(8 * 1024**3)])
    plain = f"127.0.0.1:{ports[0]}"
    urls = f"{server.client_url},http://{plain}"
    server.args += ["--listen-client-urls", urls, "--advertise-client-urls", urls]
    if not shared_http:
        help_text = subprocess.run(
            [find_etcd(), "--help"], capture_output=True, text=True, check=False, timeout=30
        )
        if "--listen-client-http-urls" in help_text.stdout + help_text.stderr:
            server.args += ["--listen-client-http-urls", f"http://127.0.0.1:{ports[1]}"]
        else:  # older releases
            print(
                "this etcd has no --listen-client-http-urls: gRPC over TLS goes through net/http",
                file=sys.stderr,
            )
    server.start()
    return server, f"etcds://{server.endpoint}/?cacert={paths['ca']}", plain


def contenders(args: argparse.Namespace) -> list[tuple[Contender, bool]]:
    """(contender, over TLS) pairs: ours on CPython (and PyPy), grpcio's aio channel."""
    found = []
    runtimes = [("CPython", args.python)]
    if args.pypy and os.access(args.pypy, os.X_OK):
        runtimes.append(("PyPy", args.pypy))
    for runtime, python in runtimes:
        for tls in (False, True):
            name = f"ours {runtime} {'TLS' if tls else 'plain'}"
            found.append((Contender(name, python, ["bench.worker_ours"]), tls))
    for tls in (False, True):
        name = f"grpcio CPython {'TLS' if tls else 'plain'}"
        found.append((Contender(name, args.python, ["bench.worker_peers", "grpcio"]), tls))
    return found


def ratio_pairs(names: list[str]) -> list[tuple[str, str]]:
    pairs = []
    for runtime in ("CPython", "PyPy"):
        ours_tls, ours_plain = f"ours {runtime} TLS", f"ours {runtime} plain"
        for a, b in (
            (ours_tls, ours_plain),
            (ours_tls, "grpcio CPython TLS"),
            (ours_plain, "grpcio CPython plain"),
        ):
            if a in names and b in names:
                pairs.append((a, b))
    return pairs


def table(found: list[Contender]) -> str:
    names = [c.name for c in found]
    pairs = ratio_pairs(names)
    header = ["ops/s (client CPU µs/op)", *names, *(f"{a} vs {b}" for a, b in pairs)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for workload in WORKLOADS:
        medians = {}
        cells = [workload]
        for c in found:
            values = c.results.get(workload)
            cpu = [r["cpu_us"] for r in c.extra.get(workload) or [] if "cpu_us" in r]
            medians[c.name] = statistics.median(values) if values else None
            cell = "—" if not values else f"{statistics.median(values):,.0f}"
            cells.append(cell + (f" ({statistics.median(cpu):.0f})" if cpu else ""))
        for a, b in pairs:
            ma, mb = medians[a], medians[b]
            cells.append(f"{ma / mb:.2f}x" if ma and mb else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tls", description=__doc__)
    parser.add_argument("workloads", nargs="*", help=f"default: {', '.join(WORKLOADS)}")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--warmup", type=float, help="seconds before measuring (see bench)")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--pypy", help="also run our client on this PyPy")
    parser.add_argument(
        "--shared-http",
        action="store_true",
        help="let etcd serve HTTP on the client port (gRPC over TLS then goes through net/http)",
    )
    args = parser.parse_args()
    if args.workloads:
        unknown = set(args.workloads) - set(WORKLOADS)
        if unknown:
            parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")
        WORKLOADS[:] = args.workloads
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as directory:
        server, tls_url, plain = start_etcd(directory, shared_http=args.shared_http)
        try:
            found = contenders(args)
            print(f"etcd TLS {tls_url} plaintext {plain}", file=sys.stderr)
            for round_index in range(args.rounds):
                for workload in WORKLOADS:
                    for c, tls in found:
                        started = time.perf_counter()
                        endpoint = tls_url if tls else plain
                        result = run_one(
                            c, workload, endpoint, seconds=args.seconds, first=0, warmup=args.warmup
                        )
                        record(c, workload, result, round_index, time.perf_counter() - started)
        finally:
            server.close()  # type: ignore[attr-defined]
    only = [c for c, _ in found]
    print(table(only))
    print(f"\n{spread(only, WORKLOADS)}")


if __name__ == "__main__":
    main()
