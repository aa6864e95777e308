"""The inference service against fair anchors, on loopback, with wrk.

    tools/bazel run //tools/benchmarks:service_benchmark -- --out /tmp/service.md

Starts `service/main.py` (the production gunicorn configuration) and, beside it, the
latency floor: `floor_app.py`, a WSGI app that parses the same JSON body and answers
a fixed response, under gunicorn with the same configuration file and settings. wrk
(Debian package `wrk`, one thread) drives `POST /v2/models/<name>/infer`:

1. latency at 1 connection, batch 1: service and floor alternately, p50 of each;
2. even load: `--repeats` runs at 8 connections, batch 1, min/median/max requests/s
   against the 1-connection figure;
3. batch 256 at 1 and 8 connections: JSON bodies against the binary tensor data
   extension (raw FP32 in, raw outputs back), rows/s.

The raw forward pass of the same model is timed in this process (torch threads as in
one worker). Then an optional soak at 8 connections checks for errors and for growth
of the workers' resident memory.
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
GUNICORN_CONFIG = REPO / "service" / "gunicorn.conf.py"
FLOOR_DIR = Path(__file__).parent
MODEL_NAME = "digits-classifier"
WRK_SCRIPT = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("{body}", "r")
wrk.body = f:read("*a")
f:close()
"""
WRK_BINARY_SCRIPT = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/octet-stream"
wrk.headers["Inference-Header-Content-Length"] = "{header_length}"
local f = io.open("{body}", "rb")
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
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.MULTILINE))
    if set(latency) != {"50", "99"}:
        raise RuntimeError(f"cannot read wrk's latency distribution:\n{out}")
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


def write_binary_body(path: Path, batch: int) -> int:
    """A binary-extension request body (FP32 pixels, binary outputs); returns the header length."""
    raw = np.random.default_rng(batch).integers(0, 17, size=(batch, 64)).astype("<f4").tobytes()
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "pixels",
                    "datatype": "FP32",
                    "shape": [batch, 64],
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    path.write_bytes(header + raw)
    return len(header)


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


def spread(values: list[float], fmt: str = ",.0f") -> str:
    """`min / median / max` of repeated measurements."""
    return " / ".join(format(v, fmt) for v in (min(values), float(np.median(values)), max(values)))


def start_gunicorn(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model-dir", type=Path, help="model to serve (default: an untrained default model)"
    )
    parser.add_argument("--seconds", type=int, default=10, help="duration of each load point")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each measurement")
    parser.add_argument("--soak-seconds", type=int, default=0, help="soak duration (0: none)")
    parser.add_argument(
        "--workers", type=int, help="gunicorn workers (default: the configuration's)"
    )
    parser.add_argument(
        "--threads", type=int, help="threads per worker (default: the configuration's)"
    )
    parser.add_argument(
        "--max-requests",
        type=int,
        default=0,
        help="requests before a worker is recycled (default 0: never; the production "
        "default, 50,000, recycles each worker every ~25 s at 2,000 requests/s, and a "
        "run that spans a restart (about 5 s, mostly importing torch) measures that)",
    )
    parser.add_argument("--out", type=Path, help="write the Markdown report here")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("error: wrk not found (Debian package wrk; tools/bazel installs it)", file=sys.stderr)
        return 1

    with tempfile.TemporaryDirectory(prefix="slipway-bench-") as tmp_name:
        tmp = Path(tmp_name)
        model_dir = args.model_dir
        if model_dir is None:
            import torch
            from slipway.models import ModelConfig, build_model, save_model_dir

            torch.manual_seed(0)
            model_dir = save_model_dir(build_model(ModelConfig()), ModelConfig(), tmp / "model")
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SLIPWAY_", "PROMETHEUS_MULTIPROC_DIR"))
        }
        for name, value in (("SLIPWAY_WORKERS", args.workers), ("SLIPWAY_THREADS", args.threads)):
            if value:
                env[name] = str(value)
        env["SLIPWAY_MAX_REQUESTS"] = str(args.max_requests)
        port, floor_port = free_port(), free_port()
        url, floor_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{floor_port}"
        service_cmd = [sys.executable, str(SERVICE_MAIN), "--model-dir", str(model_dir)]
        proc = start_gunicorn(
            [*service_cmd, "--bind", f"127.0.0.1:{port}"], env, tmp / "service.log"
        )
        floor_env = {
            **env,
            "PYTHONPATH": os.pathsep.join([str(FLOOR_DIR), env.get("PYTHONPATH", "")]),
        }
        floor_cmd = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONFIG)]
        floor = start_gunicorn(
            [*floor_cmd, "--bind", f"127.0.0.1:{floor_port}", "floor_app:application"],
            floor_env,
            tmp / "floor.log",
        )
        try:
            wait_ready(url, proc)
            wait_ready(floor_url, floor)
            workers = len(re.findall(r"Booting worker", (tmp / "service.log").read_text()))
            path = f"/v2/models/{MODEL_NAME}/infer"
            scripts = {}
            for batch in (1, 256):
                write_body(tmp / f"body{batch}.json", batch)
                scripts[batch] = tmp / f"post{batch}.lua"
                scripts[batch].write_text(WRK_SCRIPT.format(body=tmp / f"body{batch}.json"))
            header_length = write_binary_body(tmp / "body256.bin", 256)
            binary = tmp / "binary256.lua"
            binary.write_text(
                WRK_BINARY_SCRIPT.format(header_length=header_length, body=tmp / "body256.bin")
            )
            for target, script in ((url, scripts[1]), (floor_url, scripts[1]), (url, binary)):
                run_wrk(target + path, script, 1, 8, 2)  # warm-up

            latency: dict[str, list[LoadResult]] = {"service": [], "floor": []}
            for _ in range(args.repeats):
                for name, target in (("floor", floor_url), ("service", url)):
                    result = run_wrk(target + path, scripts[1], 1, 1, args.seconds)
                    print(name, result, flush=True)
                    latency[name].append(result)
            even = []
            for _ in range(args.repeats):
                result = run_wrk(url + path, scripts[1], 1, 8, args.seconds)
                print("8 connections", result, flush=True)
                even.append(result)
            batch256: dict[tuple[str, int], list[LoadResult]] = {}
            for connections in (1, 8):
                for _ in range(args.repeats):
                    for name, script in (("JSON", scripts[256]), ("binary", binary)):
                        result = run_wrk(url + path, script, 256, connections, args.seconds)
                        print(name, result, flush=True)
                        batch256.setdefault((name, connections), []).append(result)
            torch_threads = max(1, (os.cpu_count() or 1) // workers)
            forward = {b: raw_forward_ms(model_dir, b, torch_threads) for b in (1, 256)}
            print("raw forward p50 ms:", forward, flush=True)
            soak_line = ""
            if args.soak_seconds:
                soak_line = soak(proc.pid, url + path, scripts[1], args.soak_seconds)
                print(soak_line, flush=True)
        finally:
            for p in (proc, floor):
                p.send_signal(signal.SIGTERM)
                p.wait(timeout=60)

    setup = (
        f"{os.cpu_count()} cores, {workers} gunicorn workers "
        f"({args.threads or 'default'} threads each) for the service and the floor alike, "
        f"workers recycled after {args.max_requests or 'no'} requests, "
        f"wrk with 1 thread on loopback, {args.seconds} s per run, {args.repeats} runs of each, "
        + (
            "untrained default MLP (64-512-256-10)."
            if args.model_dir is None
            else f"model {args.model_dir}."
        )
    )
    report = markdown(latency, even, batch256, forward, soak_line, setup)
    print(report)
    if args.out:
        args.out.write_text(report)
    return 0


def soak(master_pid: int, url: str, script: Path, seconds: int) -> str:
    """Run `seconds` at batch 1 and 8 connections; errors and worker memory growth."""
    before = worker_rss_bytes(master_pid)
    result = run_wrk(url, script, 1, 8, seconds)
    after = worker_rss_bytes(master_pid)
    rss = ", ".join(
        f"{before[p] / 2**20:.0f} -> {after[p] / 2**20:.0f}"
        if p in after
        else f"{before[p] / 2**20:.0f} -> recycled"
        for p in sorted(before)
    )
    return (
        f"Soak, {seconds} s at batch 1 and 8 connections: "
        f"{int(result.requests_per_second * seconds):,} requests, {result.errors} errors, "
        f"{result.requests_per_second:,.0f} requests/s, p99 {result.p99_ms:.2f} ms; "
        f"worker resident memory (MiB) {rss}."
    )


def markdown(
    latency: dict[str, list[LoadResult]],
    even: list[LoadResult],
    batch256: dict[tuple[str, int], list[LoadResult]],
    forward: dict[int, float],
    soak_line: str,
    setup: str,
) -> str:
    service_p50 = [r.p50_ms for r in latency["service"]]
    floor_p50 = [r.p50_ms for r in latency["floor"]]
    ratio = [s / f for s, f in zip(service_p50, floor_p50, strict=True)]
    one = float(np.median([r.requests_per_second for r in latency["service"]]))
    even_rps = [r.requests_per_second for r in even]
    rows = {k: [r.requests_per_second * r.batch for r in v] for k, v in batch256.items()}
    speedup = {
        c: [b / j for b, j in zip(rows["binary", c], rows["JSON", c], strict=True)] for c in (1, 8)
    }
    lines = [
        "# Inference service against its anchors",
        "",
        "Produced by `tools/benchmarks/service_benchmark.py`: " + setup,
        "Each cell is min / median / max over the runs.",
        "",
        "| measurement | service | anchor | ratio | goal |",
        "|---|---:|---:|---:|---|",
        f"| p50 latency, 1 connection, batch 1 (ms); anchor: the floor app | {spread(service_p50, '.3f')} "
        f"| {spread(floor_p50, '.3f')} | {spread(ratio, '.2f')} | <= 1.25: "
        f"{'met' if float(np.median(ratio)) <= 1.25 else 'not met'} (median) |",
        f"| requests/s, 8 connections, batch 1; anchor: 1 connection (median {one:,.0f}) "
        f"| {spread(even_rps)} | {one:,.0f} | {min(even_rps) / one:.2f} (lowest) "
        f"| >= 1.5 for the lowest: {'met' if min(even_rps) >= 1.5 * one else 'not met'} |",
        *(
            f"| rows/s, batch 256, {c} connection{'s' if c > 1 else ''}, binary tensors; "
            f"anchor: JSON | {spread(rows['binary', c])} | {spread(rows['JSON', c])} "
            f"| {spread(speedup[c], '.2f')} "
            f"| >= 3: {'met' if float(np.median(speedup[c])) >= 3 else 'not met'} (median) |"
            for c in (1, 8)
        ),
        "",
        f"Requests/s at 1 connection, batch 1: service {spread([r.requests_per_second for r in latency['service']])}, "
        f"floor {spread([r.requests_per_second for r in latency['floor']])}. "
        f"p99 at 8 connections: {spread([r.p99_ms for r in even], '.2f')} ms. "
        f"Raw forward pass p50 in this process: {forward[1]:.3f} ms (batch 1), "
        f"{forward[256]:.3f} ms (batch 256). Errors: "
        f"{sum(r.errors for v in (*latency.values(), even, *batch256.values()) for r in v)}.",
        f"p50 at batch 256, 1 connection: JSON {spread([r.p50_ms for r in batch256['JSON', 1]], '.2f')} ms, "
        f"binary {spread([r.p50_ms for r in batch256['binary', 1]], '.2f')} ms.",
        "",
    ]
    if soak_line:
        lines += [soak_line, ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
