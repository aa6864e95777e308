"""Benchmark: Slipway's training loop and batch inference against bare torch.

Run `tools/bazel run //tools/benchmarks:ml_benchmark` to print a Markdown table of:

- training samples/s of `slipway.training.train` (validation every epoch, checkpoints)
  against a bare loop (shuffle, forward, backward, Adam step) on the same model and
  data (goal: ratio >= 0.9);
- batch-inference rows/s of `slipway.inference.run_batch_inference` over a Parquet file
  (read, validate, scale, predict, write: the inference job's path) against a minimal
  hand-written script doing the same I/O (pyarrow reads batches, torch predicts,
  pyarrow writes id, label and probability), and of `slipway.inference.predict` in
  memory against a bare forward pass (goal: ratio >= 0.9 for both);
- peak resident memory (bytes, Linux `VmHWM`) of batch inference in a fresh process on
  the digits and on a file 20 times as large (goal: at most 1.05 times).

Data: the scikit-learn digits (see `slipway.data`). Each timing is the best of
`--repeat` runs after a warm-up.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import torch
from slipway import data, inference, preprocessing
from slipway.models import ModelConfig, build_model, load_model_dir, save_model_dir
from slipway.training import TrainConfig, set_determinism, to_tensors, train

GOAL_RATIO = 0.9
SCALE_UP = 20


@dataclass(frozen=True)
class Row:
    """One benchmark line: what, Slipway's figure, the baseline's, and the goal."""

    name: str
    unit: str
    slipway: float
    baseline: float
    goal: str

    @property
    def ratio(self) -> float:
        """Slipway's figure over the baseline's."""
        return self.slipway / self.baseline if self.baseline else float("nan")


def _paired(
    repeat: int, ours: Callable[[], float], base: Callable[[], float]
) -> tuple[float, float]:
    """Best-of-`repeat` seconds of each, alternating runs so that load on a shared
    machine hits both alike; one untimed warm-up each first."""
    ours(), base()
    times = [(ours(), base()) for _ in range(repeat)]
    return min(t[0] for t in times), min(t[1] for t in times)


def bare_training_loop(
    model_config: ModelConfig, x: torch.Tensor, y: torch.Tensor, config: TrainConfig
) -> torch.nn.Module:
    """The baseline: the same model, optimiser and batches, with nothing else around it."""
    torch.manual_seed(config.seed)
    model = build_model(model_config)
    opt = torch.optim.Adam(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    for _ in range(config.epochs):
        order = torch.randperm(len(x))
        for start in range(0, len(x), config.batch_size):
            idx = order[start : start + config.batch_size]
            opt.zero_grad(set_to_none=True)
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
    return model


def bench_training(epochs: int, repeat: int, workdir: Path) -> Row:
    """Training samples/s: `train` (with validation and checkpointing) vs the bare loop."""
    splits = data.split(data.validate(data.load_digits_frame()), seed=0)
    train_xy, val_xy = to_tensors(splits.train), to_tensors(splits.val)
    mc, tc = ModelConfig(), TrainConfig(epochs=epochs)
    samples = len(train_xy[0]) * epochs
    set_determinism()

    def slipway_run() -> float:
        t0 = time.perf_counter()
        train(mc, train_xy, val_xy, tc, checkpoint_path=workdir / "last.pt", progress=False)
        return time.perf_counter() - t0

    def bare_run() -> float:
        t0 = time.perf_counter()
        bare_training_loop(mc, *train_xy, tc)
        return time.perf_counter() - t0

    ours, base = _paired(repeat, slipway_run, bare_run)
    name = f"training, {epochs} epochs x {len(train_xy[0])} rows"
    return Row(name, "samples/s", samples / ours, samples / base, f"ratio >= {GOAL_RATIO}")


def _write_scaled_parquet(path: Path, times: int) -> int:
    frame = data.validate(data.load_digits_frame())
    rows = 0
    with pq.ParquetWriter(path, pa.Schema.from_pandas(frame, preserve_index=False)) as writer:
        for i in range(times):
            part = frame.assign(id=frame["id"] + i * len(frame))
            writer.write_table(pa.Table.from_pandas(part, preserve_index=False))  # 1 row group each
            rows += len(part)
    return rows


def anchor_file_to_file(module: torch.nn.Module, parquet: Path, out: Path, batch_size: int) -> None:
    """The anchor: Parquet in batches -> scale -> forward -> label, probability -> Parquet."""
    writer = None
    with torch.inference_mode():
        for batch in pq.ParquetFile(parquet).iter_batches(
            batch_size=batch_size, columns=["id", *data.FEATURE_COLUMNS]
        ):
            pixels = batch.select(list(data.FEATURE_COLUMNS)).to_pandas().to_numpy()
            logits = module(torch.from_numpy(preprocessing.scale_pixels(pixels)))
            probability, label = torch.softmax(logits, dim=1).max(dim=1)
            table = pa.table(
                {
                    "id": batch.column("id"),
                    "label": label.numpy(),
                    "probability": probability.numpy(),
                }
            )
            writer = writer or pq.ParquetWriter(out, table.schema)
            writer.write_table(table)
    if writer is not None:
        writer.close()


def bench_inference(
    model_dir: Path, parquet: Path, rows: int, repeat: int, workdir: Path
) -> list[Row]:
    """Batch-inference rows/s: file to file vs the anchor script, in memory vs a bare forward."""
    module = load_model_dir(model_dir).module
    x = preprocessing.scale_pixels(
        pq.read_table(parquet, columns=list(data.FEATURE_COLUMNS)).to_pandas().to_numpy()
    )
    xt = torch.from_numpy(x)
    bs = inference.DEFAULT_BATCH_SIZE

    def bare() -> float:
        t0 = time.perf_counter()
        with torch.inference_mode():
            for start in range(0, len(xt), bs):
                module(xt[start : start + bs]).argmax(dim=1)
        return time.perf_counter() - t0

    def in_memory() -> float:
        t0 = time.perf_counter()
        inference.predict(module, x, batch_size=bs)
        return time.perf_counter() - t0

    def file_to_file() -> float:
        t0 = time.perf_counter()
        inference.run_batch_inference(
            module, [parquet], workdir / "out", batch_size=bs, progress=False
        )
        return time.perf_counter() - t0

    def anchor() -> float:
        t0 = time.perf_counter()
        anchor_file_to_file(module, parquet, workdir / "anchor.parquet", bs)
        return time.perf_counter() - t0

    mem, bare_mem = _paired(repeat, in_memory, bare)
    f2f, bare_f2f = _paired(repeat, file_to_file, anchor)
    goal = f"ratio >= {GOAL_RATIO}"
    return [
        Row(f"batch inference in memory, {rows} rows", "rows/s", rows / mem, rows / bare_mem, goal),
        Row(
            f"batch inference Parquet to Parquet, {rows} rows (baseline: the anchor script)",
            "rows/s",
            rows / f2f,
            rows / bare_f2f,
            goal,
        ),
    ]


# VmHWM (not ru_maxrss, which survives exec and so would report the parent's peak).
_PEAK_SCRIPT = """
import json, sys
from slipway.inference import run_batch_inference
from slipway.models import load_model_dir
module = load_model_dir(sys.argv[1]).module
summary = run_batch_inference(module, [sys.argv[2]], sys.argv[3], progress=False)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(json.dumps({"rows": summary.rows, "peak_kib": int(hwm)}))
"""


def peak_inference_bytes(model_dir: Path, parquet: Path, out_dir: Path) -> int:
    """Peak RSS in bytes (Linux only) of a fresh process running batch inference over `parquet`."""
    result = subprocess.run(
        [sys.executable, "-c", _PEAK_SCRIPT, str(model_dir), str(parquet), str(out_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(json.loads(result.stdout.strip().splitlines()[-1])["peak_kib"]) * 1024


def run(epochs: int = 20, repeat: int = 3) -> list[Row]:
    """Run all benchmarks and return their rows."""
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="slipway-bench-") as tmp:
        work = Path(tmp)
        rows.append(bench_training(epochs, repeat, work))
        torch.manual_seed(0)
        cfg = ModelConfig()
        model_dir = save_model_dir(build_model(cfg).eval(), cfg, work / "model")
        small, big = work / "digits.parquet", work / f"digits-x{SCALE_UP}.parquet"
        _write_scaled_parquet(small, 1)
        n_big = _write_scaled_parquet(big, SCALE_UP)
        rows.extend(bench_inference(model_dir, big, n_big, repeat, work))
        peak_small = peak_inference_bytes(model_dir, small, work / "p1")
        peak_big = peak_inference_bytes(model_dir, big, work / "p2")
        rows.append(
            Row(
                f"peak RSS of batch inference, {SCALE_UP}x data vs 1x",
                "MiB",
                peak_big / 2**20,
                peak_small / 2**20,
                "ratio <= 1.05",
            )
        )
    return rows


def markdown(rows: Sequence[Row]) -> str:
    """Render rows as a Markdown table."""
    lines = [
        "| benchmark | unit | slipway | baseline | ratio | goal |",
        "|---|---|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.name} | {r.unit} | {r.slipway:,.1f} | {r.baseline:,.1f} | {r.ratio:.3f} | {r.goal} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: `tools/bazel run //tools/benchmarks:ml_benchmark [--epochs N] [--repeat N]`."""
    parser = argparse.ArgumentParser(
        prog="tools/bazel run //tools/benchmarks:ml_benchmark",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--epochs", type=int, default=20, help="training epochs per timing (default 20)"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="timings per figure, best kept (default 3)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    t0 = time.perf_counter()
    table = markdown(run(args.epochs, args.repeat))
    print(table)
    print(
        f"\n(torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{time.perf_counter() - t0:.0f}s; own peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
