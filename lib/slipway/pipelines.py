"""The pipeline processing -> training -> evaluation -> inference, and a local runner.

A pipeline is a definition: an ordered list of steps, each the entry point of a job
(`jobs/<step>/main.py`) and its arguments. Steps share nothing but files under the
data directory and the model registry, so any runner (this local one, a workflow
engine, a CI job) can run them, one process per step.

The local runner runs steps in order with the current interpreter, streams their
output to stderr, stops at the first failing step and reports that step's one-line
reason (its last `error: ...` line), and can start from a named step.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import IO, TypeVar

from slipway.errors import PipelineError
from slipway.model_uri import CHALLENGER, CHAMPION, DEFAULT_MODEL_NAME

LOG = logging.getLogger(__name__)
STEP_NAMES: tuple[str, ...] = ("processing", "training", "evaluation", "inference")
P = TypeVar("P", bound=PurePath)


@dataclass(frozen=True)
class Step:
    """One pipeline step: a name and the Python entry point it runs with `args`."""

    name: str
    entry_point: PurePath
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pipeline:
    """An ordered, named list of steps."""

    name: str
    steps: tuple[Step, ...]

    def __post_init__(self) -> None:
        names = [s.name for s in self.steps]
        if len(set(names)) != len(names):
            raise PipelineError(f"pipeline {self.name!r} has duplicate step names: {names}")

    @property
    def step_names(self) -> list[str]:
        """Names in run order."""
        return [s.name for s in self.steps]

    def steps_from(self, name: str | None) -> list[Step]:
        """The steps from `name` (inclusive) to the end; all steps when `name` is None.

        Raises:
            PipelineError: no step called `name`.
        """
        if name is None:
            return list(self.steps)
        if name not in self.step_names:
            raise PipelineError(
                f"no step {name!r} in pipeline {self.name!r}; steps: {', '.join(self.step_names)}"
            )
        return list(self.steps[self.step_names.index(name) :])


def digits_pipeline(
    jobs_dir: PurePath,
    data_dir: PurePath,
    *,
    source: str = "digits",
    seed: int | str = 0,
    model_name: str = DEFAULT_MODEL_NAME,
    epochs: int | None = None,
    common_args: Sequence[str] = (),
    registry_args: Sequence[str] = (),
    policy_args: Sequence[str] = (),
) -> Pipeline:
    """The default pipeline over `source` (the built-in digits or a CSV/Parquet path).

    Args:
        jobs_dir: folder holding `<step>/main.py` for each step (not resolved, so Bazel
            runfiles symlinks keep working).
        data_dir: shared data directory; processed data, checkpoints, reports, predictions
            and the embedded registry live under it.
        common_args: flags given to every step (e.g. `--log-level`, `--no-progress`).
        registry_args: flags given to the steps that use the registry (`--tracking-uri`).
        policy_args: promotion-policy flags for the evaluation step.

    Values are passed to the steps as text, so a workflow engine's placeholders work
    in place of `data_dir`, `source`, `seed` and `model_name` (the Kubeflow Pipelines
    definition in `jobs/pipelines/kfp_pipeline.py` passes `{{$.inputs.parameters[...]}}`).

    Evaluation writes `<data_dir>/reports/evaluation/report.json`; inference scores the
    test split of the latest processed version into `<data_dir>/predictions`.
    """
    d = str(data_dir)
    common = ("--data-dir", d, *common_args)
    with_registry = (*common, *registry_args)
    train_args = ["--model-name", model_name, "--seed", str(seed)]
    if epochs is not None:
        train_args += ["--epochs", str(epochs)]
    steps = (
        Step(
            "processing",
            jobs_dir / "processing" / "main.py",
            (*common, "--input", source, "--seed", str(seed)),
        ),
        Step("training", jobs_dir / "training" / "main.py", (*with_registry, *train_args)),
        Step(
            "evaluation",
            jobs_dir / "evaluation" / "main.py",
            (
                *with_registry,
                "--model-name",
                model_name,
                "--alias",
                CHALLENGER,
                "--output-dir",
                str(report_dir(data_dir)),
                *policy_args,
            ),
        ),
        Step(
            "inference",
            jobs_dir / "inference" / "main.py",
            (
                *with_registry,
                "--model-name",
                model_name,
                "--alias",
                CHAMPION,
                "--input",
                str(data_dir / "processed"),
                "--split",
                "test",
                "--output-dir",
                str(data_dir / "predictions"),
            ),
        ),
    )
    return Pipeline("digits", steps)


def report_dir(data_dir: P) -> P:
    """Where the pipeline's evaluation step writes `report.json` and the confusion PNG."""
    return data_dir / "reports" / "evaluation"


@dataclass(frozen=True)
class StepResult:
    """How one step ended: exit code, wall seconds and, on failure, a one-line reason."""

    name: str
    returncode: int
    seconds: float
    reason: str = ""

    @property
    def ok(self) -> bool:
        """True when the step exited 0."""
        return self.returncode == 0


@dataclass
class PipelineRun:
    """Results of the steps that ran, in order; the last one failed if `ok` is False."""

    results: list[StepResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every step that ran succeeded (a run stops at the first failure)."""
        return all(r.ok for r in self.results)

    @property
    def failed(self) -> StepResult | None:
        """The failed step, if any."""
        return next((r for r in self.results if not r.ok), None)

    def raise_for_failure(self) -> None:
        """Raise `PipelineError("step <name> failed: <reason>")` if a step failed."""
        bad = self.failed
        if bad is not None:
            raise PipelineError(f"step {bad.name!r} failed: {bad.reason}")


class LocalRunner:
    """Run steps as child processes of this interpreter, one after another.

    Args:
        python: interpreter for the steps (default: `sys.executable`).
        env: environment of the steps (default: this process's). The runner prepends
            this process's `sys.path` to `PYTHONPATH`, so steps import the same
            packages whether run from a virtualenv or Bazel runfiles.
        stream: where step output (stdout and stderr) is echoed (default: stderr), so
            the runner's own stdout carries only its summary.
    """

    def __init__(
        self,
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
        stream: IO[str] | None = None,
    ) -> None:
        self.python = python
        self.env = dict(os.environ if env is None else env)
        paths = [p for p in sys.path if p and os.path.isdir(p)]
        existing = self.env.get("PYTHONPATH", "")
        self.env["PYTHONPATH"] = os.pathsep.join([*paths, *([existing] if existing else [])])
        self.stream = stream

    def run(self, pipeline: Pipeline, from_step: str | None = None) -> PipelineRun:
        """Run `pipeline` from `from_step` (or the start); stop at the first failed step.

        Raises:
            PipelineError: `from_step` is not a step of the pipeline.
        """
        run = PipelineRun()
        for step in pipeline.steps_from(from_step):
            result = self.run_step(step)
            run.results.append(result)
            if not result.ok:
                LOG.error(
                    "step %s failed after %.1fs: %s", step.name, result.seconds, result.reason
                )
                break
            LOG.info("step %s done in %.1fs", step.name, result.seconds)
        return run

    def run_step(self, step: Step) -> StepResult:
        """Run one step to completion and return how it ended."""
        out = self.stream or sys.stderr
        if not os.path.exists(step.entry_point):
            return StepResult(step.name, 127, 0.0, f"entry point not found: {step.entry_point}")
        LOG.info("step %s: starting", step.name)
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [self.python, str(step.entry_point), *step.args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            bufsize=1,
        )
        last_error: list[str] = []
        last_line: list[str] = []

        def pump(pipe: IO[str]) -> None:
            for line in pipe:
                out.write(line)
                out.flush()
                text = line.strip()
                if text:
                    last_line[:] = [text]
                    if text.startswith("error:"):
                        last_error[:] = [text.removeprefix("error:").strip()]

        threads = [
            threading.Thread(target=pump, args=(p,), daemon=True)
            for p in (proc.stdout, proc.stderr)
        ]
        for t in threads:
            t.start()
        code = proc.wait()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - t0
        if code == 0:
            return StepResult(step.name, 0, seconds)
        reason = (last_error or last_line or [f"exited with code {code}"])[0]
        if code < 0:
            reason = f"killed by signal {-code}"
        return StepResult(step.name, code, seconds, reason)
