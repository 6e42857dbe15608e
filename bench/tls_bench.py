"""Small-call latency with token + TLS versus plain, over loopback; prints p50/p99 and the ratio.

Starts two real `taggerhub serve` processes on free ports (one plain with auth off,
one with auth and TLS on, lab certificates made on the fly), then times
``tagger.getSerial()`` round trips from one client, alternating between the two
servers in rounds so that machine load affects both alike. Goal: TLS+token adds
under 30 % to the p50.

    python bench/tls_bench.py [--calls 500] [--rounds 24]
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
from pathlib import Path

from loopback import echo_p50, free_port
from taggerhub import client
from taggerhub.access import certs
from taggerhub.access.users import UserStore


def start(port: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "taggerhub", "serve", "--port", str(port)],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, env={**os.environ, **env})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"server on {port} did not start; see {log}")


def echo_floor(work: Path, tls: bool, calls: int = 5000) -> float:
    """p50 of a bare 250-byte echo over loopback (no Pyro5): what TLS costs by itself right now."""
    import ssl

    if not tls:
        return echo_p50(lambda conn: conn, lambda sock: sock, calls)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(work / "server.pem", work / "server-key.pem")
    client_ctx = ssl.create_default_context(cafile=str(work / "ca.pem"))
    return echo_p50(lambda conn: server_ctx.wrap_socket(conn, server_side=True),
                    lambda sock: client_ctx.wrap_socket(sock, server_hostname="localhost"), calls)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500, help="calls per round and server")
    parser.add_argument("--rounds", type=int, default=24)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="taggerhub-tls-bench-"))
    certs.init(work, ["localhost", "127.0.0.1"])
    token = UserStore(work / "users.toml").add("bench", "operator")
    auth_env = {"TAGGERHUB_AUTH_ENABLED": "true", "TAGGERHUB_AUTH_USERS_FILE": str(work / "users.toml")}
    tls_env = {"TAGGERHUB_TLS_ENABLED": "true", "TAGGERHUB_TLS_CERT_FILE": str(work / "server.pem"),
               "TAGGERHUB_TLS_KEY_FILE": str(work / "server-key.pem")}
    ca = str(work / "ca.pem")
    setups = {  # name: (server environment, client options)
        "plain": ({}, {}),
        "token": (auth_env, {"token": token}),
        "TLS": (tls_env, {"tls_ca": ca}),
        "token+TLS": ({**auth_env, **tls_env}, {"token": token, "tls_ca": ca}),
    }
    ports = {name: free_port() for name in setups}
    procs = [start(ports[name], env, work / f"{name}.log") for name, (env, _) in setups.items()]
    server_pid = dict(zip(setups, (proc.pid for proc in procs), strict=True))
    client_cpu = dict.fromkeys(setups, 0.0)
    server_cpu = dict.fromkeys(setups, 0.0)
    try:
        # Keep the library proxies: a session (and the tagger it opened) ends when its last connection closes.
        libraries = {name: client.createProxy(port=ports[name], **options) for name, (_, options) in setups.items()}
        taggers = {name: library.createTimeTagger() for name, library in libraries.items()}
        samples: dict[str, list[float]] = {name: [] for name in setups}
        for proxy in taggers.values():
            for _ in range(300):  # warm-up
                proxy.getSerial()
        for _ in range(args.rounds):
            for name, proxy in taggers.items():
                timings = samples[name]
                cpu_client, cpu_server = time.process_time(), cpu_seconds(server_pid[name])
                for _ in range(args.calls):
                    started = time.perf_counter()
                    proxy.getSerial()
                    timings.append(time.perf_counter() - started)
                client_cpu[name] += time.process_time() - cpu_client
                server_cpu[name] += cpu_seconds(server_pid[name]) - cpu_server
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
    print(f"small-call latency, tagger.getSerial() over loopback, {args.rounds} x {args.calls} calls each")
    print(f"{'server':12} {'p50 us':>8} {'p99 us':>8} {'mean us':>8}   {'':9} {'CPU/call: client':>16} {'server':>7}")
    stats = {}
    for name, timings in samples.items():
        stats[name] = (percentile(timings, 0.5), percentile(timings, 0.99), statistics.fmean(timings))
        p50, p99, mean = stats[name]
        n = len(timings)
        print(f"{name:12} {p50 * 1e6:8.1f} {p99 * 1e6:8.1f} {mean * 1e6:8.1f}   p50 x{p50 / stats['plain'][0]:.2f}"
              f" {client_cpu[name] / n * 1e6:13.1f} us {server_cpu[name] / n * 1e6:6.1f} us")
    plain_echo, tls_echo = echo_floor(work, False), echo_floor(work, True)
    print(f"bare loopback echo (no Pyro5), p50: plain {plain_echo * 1e6:.1f} us, TLS {tls_echo * 1e6:.1f} us "
          f"(TLS by itself adds {(tls_echo - plain_echo) * 1e6:.1f} us per round trip)")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    ratio50 = stats["token+TLS"][0] / stats["plain"][0]
    ratio99 = stats["token+TLS"][1] / stats["plain"][1]
    print(f"ratio token+TLS / plain: p50 {ratio50:.2f}  p99 {ratio99:.2f}  "
          f"(goal p50 < 1.30: {'met' if ratio50 < 1.30 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
