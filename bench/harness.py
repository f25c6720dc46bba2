"""What the benchmark scripts share: latency series, interleaved rounds, a served checkout, clients.

`Series` and `interleaved` time paths in alternating rounds; `start_server`/`wait_ready` run `tailor
serve` of a checkout in a subprocess; `RawClient` posts image bodies over the stdlib's http.client.
"""
from __future__ import annotations

import http.client
import os
import statistics
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class Series:
    """Latencies (ms) and throughput of one path at one concurrency, accumulated over rounds."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.count, self.wall = 0, 0.0

    def run(self, call: Callable, items: list, clients: int) -> None:
        """call(item) for every item with `clients` concurrent callers."""
        def timed(item):
            t0 = time.perf_counter()
            call(item)
            self.latencies.append((time.perf_counter() - t0) * 1000)

        t0 = time.perf_counter()
        if clients == 1:
            for item in items:
                timed(item)
        else:
            with ThreadPoolExecutor(clients) as pool:
                list(pool.map(timed, items))
        self.wall += time.perf_counter() - t0
        self.count += len(items)

    @property
    def median(self) -> float:
        return statistics.median(self.latencies)

    @property
    def p95(self) -> float:
        return percentile(self.latencies, 0.95)

    @property
    def ips(self) -> float:
        return self.count / self.wall


def interleaved(paths: dict[str, tuple[Callable, list]], levels: list[int], rounds: int) -> dict:
    """{(path, clients): Series}: each round runs every path over all its items once, in turn."""
    out = {(name, c): Series() for name in paths for c in levels}
    for c in levels:
        for _ in range(rounds):
            for name, (call, items) in paths.items():
                out[(name, c)].run(call, items, c)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process in MiB, from /proc (Linux)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    kb = lambda k: float(fields.get(k, "0 kB").split()[0]) / 1024  # noqa: E731
    return kb("VmRSS"), kb("VmHWM")


def start_server(root: Path, model: Path, threads: int, port: int, data_dir: str,
                 max_in_flight: int) -> subprocess.Popen:
    """`tailor serve` of the code under root. The concurrency limit is the one under test (default: the
    highest client count); no worker subprocess, so only the serving process runs beside the clients."""
    env = {**os.environ, "TAILOR_DATA_DIR": data_dir,
           "TAILOR_MAX_IN_FLIGHT": str(max_in_flight), "TAILOR_START_WORKER": "false",
           "TAILOR_SETTINGS_FILE": "", "PYTHONPATH": str(root)}
    cmd = [sys.executable, "-c", "from service.cli import main; main()", "serve", "--host", "127.0.0.1",
           "--port", str(port), "--model", str(model), "--backend", "onnx", "--threads", str(threads),
           "--log-level", "warning"]
    return subprocess.Popen(cmd, env=env, cwd=tempfile.gettempdir())


def wait_ready(client, base: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with code {proc.returncode}")
        try:
            if client.get(f"{base}/v1/health/ready").status_code == 200:
                return
        except Exception:
            pass
        time.sleep(0.2)
    raise SystemExit("server did not become ready")


class RawClient:
    """POSTs with the image itself as the body over the stdlib's http.client, one kept-alive connection
    per client thread: the leanest client, so that a round trip is mostly the server's work."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._local = threading.local()

    def post(self, path: str, body: bytes, content_type: str = "image/jpeg") -> tuple[int, bytes]:
        try:
            return self._post(path, body, content_type)
        except ConnectionError:  # broken pipe, reset, RemoteDisconnected
            # the server closed a connection left idle past its keep-alive time (between rounds): reopen once
            self._local.conn.close()
            self._local.conn = None
            return self._post(path, body, content_type)

    def _post(self, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
        if getattr(self._local, "conn", None) is None:
            self._local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        self._local.conn.request("POST", path, body=body, headers={"Content-Type": content_type})
        response = self._local.conn.getresponse()
        return response.status, response.read()
