"""slipway.pipelines: the definition, ordering, stop-at-first-failure and resume-from-step."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from slipway import pipelines
from slipway.errors import PipelineError


def test_digits_pipeline_definition(tmp_path: Path) -> None:
    p = pipelines.digits_pipeline(
        Path("jobs"), tmp_path, seed=3, epochs=2, registry_args=["--tracking-uri", "http://h"]
    )
    assert p.step_names == list(pipelines.STEP_NAMES)
    assert p.steps[0].entry_point == Path("jobs/processing/main.py")
    assert "--tracking-uri" not in p.steps[0].args  # processing has no registry
    assert all("--tracking-uri" in s.args for s in p.steps[1:])
    assert "--epochs" in p.steps[1].args and "3" in p.steps[1].args
    assert [s.name for s in p.steps_from("evaluation")] == ["evaluation", "inference"]
    with pytest.raises(PipelineError, match="no step"):
        p.steps_from("deploy")
    with pytest.raises(PipelineError, match="duplicate"):
        pipelines.Pipeline("x", (p.steps[0], p.steps[0]))


def _script(tmp_path: Path, name: str, body: str) -> pipelines.Step:
    path = tmp_path / f"{name}.py"
    path.write_text(f"import sys, pathlib\n{body}\n")
    return pipelines.Step(name, path, (str(tmp_path / "log.txt"),))


def test_runner_runs_in_order_and_stops_at_first_failure(tmp_path: Path) -> None:
    append = "pathlib.Path(sys.argv[1]).open('a').write('{}\\n')"
    steps = (
        _script(tmp_path, "a", append.format("a")),
        _script(
            tmp_path,
            "b",
            append.format("b") + "\nprint('error: disk full', file=sys.stderr)\nsys.exit(1)",
        ),
        _script(tmp_path, "c", append.format("c")),
    )
    out = io.StringIO()
    run = pipelines.LocalRunner(python=sys.executable, stream=out).run(
        pipelines.Pipeline("t", steps)
    )
    assert [r.name for r in run.results] == ["a", "b"] and not run.ok
    assert (
        run.failed is not None and run.failed.reason == "disk full" and run.failed.returncode == 1
    )
    assert (tmp_path / "log.txt").read_text() == "a\nb\n"
    assert "error: disk full" in out.getvalue()
    with pytest.raises(PipelineError, match="step 'b' failed: disk full"):
        run.raise_for_failure()

    (tmp_path / "log.txt").unlink()
    run = pipelines.LocalRunner(stream=out).run(pipelines.Pipeline("t", steps), from_step="c")
    assert run.ok and (tmp_path / "log.txt").read_text() == "c\n"


def test_runner_reports_missing_entry_point(tmp_path: Path) -> None:
    step = pipelines.Step("x", tmp_path / "missing.py")
    result = pipelines.LocalRunner(stream=io.StringIO()).run_step(step)
    assert not result.ok and "not found" in result.reason


def test_runner_passes_sys_path_to_steps(tmp_path: Path) -> None:
    runner = pipelines.LocalRunner(env={"PYTHONPATH": "/extra"})
    assert runner.env["PYTHONPATH"].endswith("/extra")
    first = next(p for p in sys.path if p and Path(p).is_dir())
    assert first in runner.env["PYTHONPATH"].split(":")
