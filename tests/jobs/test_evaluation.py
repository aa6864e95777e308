"""jobs/evaluation: report, plot, promotion policy, and bad input, as a real subprocess."""

from __future__ import annotations

import json
from pathlib import Path


def _registry(data_dir: Path):  # type: ignore[no-untyped-def]
    from slipway.registry import Registry

    return Registry.for_data_dir(data_dir)


def test_help(run_job) -> None:  # type: ignore[no-untyped-def]
    r = run_job("evaluation", "--help")
    assert r.returncode == 0 and "--min-improvement" in r.stdout and "--alias" in r.stdout


def test_promotes_first_candidate_then_keeps_it(run_job, data_dir_copy: Path) -> None:  # type: ignore[no-untyped-def]
    out = data_dir_copy / "report"
    r = run_job("evaluation", "--data-dir", str(data_dir_copy), "--output-dir", str(out))
    assert r.returncode == 0, r.stderr
    assert "promoted to champion: no champion yet" in r.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["model"]["version"] == "1" and report["data"]["rows"] == 269
    lineage = report["model"]["lineage"]  # the report names what made the model
    assert lineage["data_version"] == report["data"]["version"]
    assert set(lineage) >= {
        "git_commit",
        "git_dirty",
        "data_manifest_sha256",
        "requirements_lock_sha256",
    }
    assert report["champion"]["test"]["accuracy"] == report["candidate"]["accuracy"]
    assert (out / "confusion_matrix.png").read_bytes().startswith(b"\x89PNG")
    assert (
        _registry(data_dir_copy).get_version("digits-classifier", alias="champion").version == "1"
    )

    r = run_job(
        "evaluation", "--data-dir", str(data_dir_copy), "--output-dir", str(out), "--version", "1"
    )
    assert r.returncode == 0 and "already the champion" in r.stdout


def test_policy_floor_blocks_promotion(run_job, data_dir_copy: Path) -> None:  # type: ignore[no-untyped-def]
    r = run_job(
        "evaluation",
        "--data-dir",
        str(data_dir_copy),
        "--min-value",
        "0.9999",
        env={"SLIPWAY_POLICY_METRIC": "macro_f1"},
    )
    assert r.returncode == 0, r.stderr
    assert "not promoted: macro_f1" in r.stdout and "below the floor" in r.stdout
    assert _registry(data_dir_copy).find_version("digits-classifier", "champion") is None
    report = json.loads((data_dir_copy / "reports" / "evaluation" / "report.json").read_text())
    assert report["champion"] is None and report["policy"]["min_value"] == 0.9999


def _fails(r, *words: str) -> None:  # type: ignore[no-untyped-def]
    assert r.returncode == 1, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and all(w in last for w in words), r.stderr


def test_bad_input(call_job, trained_data_dir: Path, tmp_path: Path, unreachable_uri: str) -> None:  # type: ignore[no-untyped-def]
    d = ["--data-dir", str(trained_data_dir), "--output-dir", str(tmp_path / "out")]
    _fails(call_job("evaluation", *d, "--alias", "gold"), "no alias 'gold'")
    _fails(call_job("evaluation", *d, "--version", "7"), "no version 7")
    _fails(call_job("evaluation", *d, "--model-name", "other"), "no registered model named 'other'")
    _fails(call_job("evaluation", *d, "--tracking-uri", unreachable_uri), "cannot reach")
    _fails(
        call_job("evaluation", "--data-dir", str(tmp_path), "--processed", str(tmp_path / "none")),
        "no processed data",
    )
    assert call_job("evaluation", *d, "--min-value", "2").returncode == 2
    assert call_job("evaluation", *d, "--version", "1", "--alias", "champion").returncode == 2


def test_two_concurrent_evaluations_lose_no_promotion(job_env, data_dir_copy: Path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    # Versions 2 and 3 (the same weights as 1) race for an empty champion alias.
    reg = _registry(data_dir_copy)
    run_id = reg.get_version("digits-classifier", version="1").run_id or ""
    for _ in range(2):
        reg.register_model("digits-classifier", run_id)
    procs = {
        version: subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).parents[2] / "jobs" / "evaluation" / "main.py"),
                "--data-dir",
                str(data_dir_copy),
                "--version",
                version,
                "--output-dir",
                str(data_dir_copy / f"report-{version}"),
            ],
            env=job_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for version in ("2", "3")
    }
    done = {version: (p.wait(timeout=300), p.communicate()) for version, p in procs.items()}
    champion = reg.get_version("digits-classifier", alias="champion").version
    reports = {
        v: json.loads((data_dir_copy / f"report-{v}" / "report.json").read_text()) for v in done
    }
    for version, (code, (_, stderr)) in done.items():
        if code != 0:  # lost the race: says so, names both versions, and the report agrees
            other = "3" if version == "2" else "2"
            assert f"moved to version {other}" in stderr and f"version {version}" in stderr, stderr
            assert not reports[version]["decision"]["promote"]
    promoted = [v for v, r in reports.items() if r["decision"]["promote"]]
    # Whoever promoted last saw the other's promotion (or there was none): no lost update.
    assert champion in promoted
    if len(promoted) == 2:
        first = next(v for v in promoted if v != champion)
        assert reports[champion]["champion_before"]["version"] == first


def test_lineage_command_prints_a_versions_lineage(call_job, trained_data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    r = call_job("evaluation", "--data-dir", str(trained_data_dir), "--version", "1", "--lineage")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("digits-classifier version 1 (run ")
    keys = {line.split(":")[0].strip() for line in lines[1:]}
    assert keys >= {
        "git_commit",
        "data_version",
        "data_manifest_sha256",
        "requirements_lock_sha256",
    }
