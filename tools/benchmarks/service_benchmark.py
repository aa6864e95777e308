"""Load benchmark and soak of the inference service, on loopback, with wrk.

    python tools/benchmarks/service_benchmark.py --out /tmp/service-benchmark.md

Starts `service/main.py` (the production gunicorn configuration) on 127.0.0.1, then
drives `POST /v2/models/<name>/infer` with wrk (Debian package `wrk`) in a second
process: batch 1 and 64 at 1, 8 and 32 connections. Beside it, the raw forward pass
of the same model is timed in this process (torch threads as in one worker), so the
overhead of HTTP, JSON and validation is the difference of the two p50s. Then a soak
at 8 connections checks for errors and for growth of the workers' resident memory.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Not resolved: under Bazel the tree is a runfiles symlink farm.
REPO = Path(__file__).parent.parent.parent
SERVICE_MAIN = REPO / "service" / "main.py"
MODEL_NAME = "digits-classifier"
WRK_SCRIPT = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("{body}", "r")
wrk.body = f:read("*a")
f:close()
"""


@dataclass(frozen=True)
class LoadResult:
    """One wrk run: throughput in requests/s, latencies in ms, failed requests."""

    batch: int
    connections: int
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def run_wrk(url: str, script: Path, batch: int, connections: int, seconds: int) -> LoadResult:
    """Run wrk (1 thread: it shares the 2 cores with the server) and parse its report."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.MULTILINE))
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return LoadResult(batch, connections, rps, _ms(latency["50"]), _ms(latency["99"]), errors)


def raw_forward_ms(model_dir: Path, batch: int, torch_threads: int, repeats: int = 3000) -> float:
    """p50 of `module(x)` for `(batch, 64)` float32 in ms, torch threads as in a worker."""
    import torch
    from slipway.models import load_model_dir

    torch.set_num_threads(torch_threads)
    module = load_model_dir(model_dir).module
    x = torch.rand(batch, 64)
    times = []
    with torch.inference_mode():
        for _ in range(200):
            module(x)
        for _ in range(repeats):
            start = time.perf_counter()
            module(x)
            times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def worker_rss_bytes(master_pid: int) -> dict[int, int]:
    """Resident memory of each child of `master_pid`, in bytes (Linux /proc)."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    rss = {}
    for pid in map(int, children):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss[pid] = int(line.split()[1]) * 1024
    return rss


def write_body(path: Path, batch: int) -> None:
    data = np.random.default_rng(batch).integers(0, 17, size=(batch, 64))
    body = {
        "inputs": [
            {
                "name": "pixels",
                "datatype": "INT64",
                "shape": [batch, 64],
                "data": data.ravel().tolist(),
            }
        ]
    }
    path.write_text(json.dumps(body))


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"service exited with {proc.returncode}")
        try:
            # Every worker must be ready, not just the first to answer.
            if all(
                requests.get(f"{url}/v2/health/ready", timeout=2).status_code == 200
                for _ in range(8)
            ):
                return
        except requests.RequestException:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"service not ready after {timeout}s")


def markdown(
    results: list[LoadResult], forward: dict[int, float], soak: dict[str, object], setup: str
) -> str:
    lines = [
        "# Inference service benchmark",
        "",
        "Produced by `tools/benchmarks/service_benchmark.py`; " + setup,
        "",
        "| batch | connections | requests/s | rows/s | p50 (ms) | p99 (ms) | raw forward p50 (ms) | p50 overhead (ms) | errors |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.batch} | {r.connections} | {r.requests_per_second:,.0f} | {r.requests_per_second * r.batch:,.0f} "
            f"| {r.p50_ms:.2f} | {r.p99_ms:.2f} | {forward[r.batch]:.3f} | {r.p50_ms - forward[r.batch]:.2f} | {r.errors} |"
        )
    lines += [
        "",
        "p50 overhead = p50 latency seen by the client minus the raw forward pass (HTTP, JSON,",
        "validation, queueing; at 1 connection there is no queueing).",
        "",
        "## Soak",
        "",
        f"{soak['seconds']} s at batch 1 and 8 connections: {soak['requests']:,} requests, "
        f"{soak['errors']} errors, {soak['requests_per_second']:,.0f} requests/s, p99 {soak['p99_ms']:.2f} ms.",
        f"Worker resident memory (MiB) before -> after: {soak['rss']}; largest growth {soak['growth_pct']:.1f}%.",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model-dir", type=Path, help="model to serve (default: an untrained default model)"
    )
    parser.add_argument("--seconds", type=int, default=10, help="duration of each load point")
    parser.add_argument("--soak-seconds", type=int, default=60)
    parser.add_argument(
        "--workers", type=int, help="gunicorn workers (default: the configuration's)"
    )
    parser.add_argument(
        "--threads", type=int, help="threads per worker (default: the configuration's)"
    )
    parser.add_argument("--out", type=Path, help="write the Markdown report here")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("error: wrk not found (apt-get install wrk)", file=sys.stderr)
        return 1

    with tempfile.TemporaryDirectory(prefix="slipway-bench-") as tmp_name:
        tmp = Path(tmp_name)
        model_dir = args.model_dir
        if model_dir is None:
            import torch
            from slipway.models import ModelConfig, build_model, save_model_dir

            torch.manual_seed(0)
            model_dir = save_model_dir(build_model(ModelConfig()), ModelConfig(), tmp / "model")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SLIPWAY_", "PROMETHEUS_MULTIPROC_DIR"))
        }
        for name, value in (("SLIPWAY_WORKERS", args.workers), ("SLIPWAY_THREADS", args.threads)):
            if value:
                env[name] = str(value)
        log = open(tmp / "service.log", "wb")  # noqa: SIM115 - closed at the end
        proc = subprocess.Popen(
            [
                sys.executable,
                str(SERVICE_MAIN),
                "--model-dir",
                str(model_dir),
                "--bind",
                f"127.0.0.1:{port}",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_ready(url, proc)
            boot = (tmp / "service.log").read_text()
            workers = len(re.findall(r"Booting worker", boot))
            infer_url = f"{url}/v2/models/{MODEL_NAME}/infer"
            scripts = {}
            for batch in (1, 64):
                write_body(tmp / f"body{batch}.json", batch)
                scripts[batch] = tmp / f"post{batch}.lua"
                scripts[batch].write_text(WRK_SCRIPT.format(body=tmp / f"body{batch}.json"))
                run_wrk(infer_url, scripts[batch], batch, 8, 2)  # warm-up
            results = []
            for batch in (1, 64):
                for connections in (1, 8, 32):
                    result = run_wrk(infer_url, scripts[batch], batch, connections, args.seconds)
                    print(result, flush=True)
                    results.append(result)
            torch_threads = max(1, (os.cpu_count() or 1) // workers)
            forward = {batch: raw_forward_ms(model_dir, batch, torch_threads) for batch in (1, 64)}
            print("raw forward p50 ms:", forward, flush=True)

            before = worker_rss_bytes(proc.pid)
            soak = run_wrk(infer_url, scripts[1], 1, 8, args.soak_seconds)
            after = worker_rss_bytes(proc.pid)
            growth = (
                max((after[p] - before[p]) / before[p] * 100 for p in before if p in after)
                if set(before) & set(after)
                else float("nan")
            )
            soak_summary: dict[str, object] = {
                "seconds": args.soak_seconds,
                "requests": int(soak.requests_per_second * args.soak_seconds),
                "errors": soak.errors,
                "requests_per_second": soak.requests_per_second,
                "p99_ms": soak.p99_ms,
                "rss": ", ".join(
                    f"{before[p] / 2**20:.0f} -> {after[p] / 2**20:.0f}"
                    if p in after
                    else f"{before[p] / 2**20:.0f} -> recycled"
                    for p in sorted(before)
                ),
                "growth_pct": growth,
            }
            print("soak:", soak_summary, flush=True)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
            log.close()

    setup = (
        f"{os.cpu_count()} cores, {workers} gunicorn workers ({args.threads or 'default'} threads each), "
        f"wrk with 1 thread on loopback, {args.seconds} s per point, untrained default MLP (64-512-256-10)"
        if args.model_dir is None
        else f"{os.cpu_count()} cores, {workers} gunicorn workers, wrk 1 thread, {args.seconds} s per point."
    )
    report = markdown(results, forward, soak_summary, setup + ".")
    print(report)
    if args.out:
        args.out.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
