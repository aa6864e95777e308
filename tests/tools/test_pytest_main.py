"""tools/pytest_main.py: Bazel's test sharding protocol, run on a sample test file."""

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

MAIN = Path("tools/pytest_main.py").resolve()
NAMES = ["test_a", "test_b", "test_c", "test_d", "test_e"]


def run(
    tmp_path: Path, body: str, **shard_env: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Runs pytest_main on a file holding `body`; returns the result and the tests run."""
    sample = tmp_path / "test_sample.py"
    sample.write_text(body)
    junit = tmp_path / "junit.xml"
    junit.unlink(missing_ok=True)
    # Only this call's shard variables, whatever the outer test was given.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TEST_SHARD") and k != "TEST_TOTAL_SHARDS"
    }
    env |= {"XML_OUTPUT_FILE": str(junit), **shard_env}
    result = subprocess.run(
        [sys.executable, str(MAIN), sample.name],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    ran = (
        [case.get("name", "") for case in ET.parse(junit).iter("testcase")]
        if junit.exists()
        else []
    )
    return result, ran


def passing(names: list[str]) -> str:
    return "".join(f"def {name}():\n    pass\n\n" for name in names)


def test_unsharded_runs_every_test(tmp_path: Path) -> None:
    result, ran = run(tmp_path, passing(NAMES))
    assert result.returncode == 0, result.stdout
    assert ran == NAMES


def test_shards_split_round_robin_and_tell_bazel(tmp_path: Path) -> None:
    runs = []
    for index in range(3):
        status = tmp_path / f"status{index}"
        result, ran = run(
            tmp_path,
            passing(NAMES),
            TEST_TOTAL_SHARDS="3",
            TEST_SHARD_INDEX=str(index),
            TEST_SHARD_STATUS_FILE=str(status),
        )
        assert result.returncode == 0, result.stdout
        assert status.exists(), (
            "Bazel fails a sharded test whose runner does not touch the status file"
        )
        runs.append(ran)
    assert runs == [["test_a", "test_d"], ["test_b", "test_e"], ["test_c"]]


def test_an_empty_shard_passes(tmp_path: Path) -> None:
    result, ran = run(tmp_path, passing(NAMES[:2]), TEST_TOTAL_SHARDS="3", TEST_SHARD_INDEX="2")
    assert result.returncode == 0, result.stdout
    assert ran == []


def test_a_file_without_tests_still_fails_when_sharded(tmp_path: Path) -> None:
    result, _ = run(tmp_path, "X = 1\n", TEST_TOTAL_SHARDS="2", TEST_SHARD_INDEX="0")
    assert result.returncode == pytest.ExitCode.NO_TESTS_COLLECTED


def test_a_failure_in_a_shard_fails_it(tmp_path: Path) -> None:
    body = passing(["test_a"]) + "def test_b():\n    assert False\n"
    result, ran = run(tmp_path, body, TEST_TOTAL_SHARDS="2", TEST_SHARD_INDEX="1")
    assert result.returncode == pytest.ExitCode.TESTS_FAILED
    assert ran == ["test_b"]
    result, ran = run(tmp_path, body, TEST_TOTAL_SHARDS="2", TEST_SHARD_INDEX="0")
    assert result.returncode == 0
    assert ran == ["test_a"]


@pytest.mark.parametrize(
    ("total", "index", "message"),
    [
        ("3", "3", "TEST_SHARD_INDEX=3 is not in [0, TEST_TOTAL_SHARDS=3)"),
        ("2", "", "TEST_TOTAL_SHARDS='2' and TEST_SHARD_INDEX='' must be integers"),
        ("two", "0", "TEST_TOTAL_SHARDS='two' and TEST_SHARD_INDEX='0' must be integers"),
    ],
)
def test_bad_shard_variables_are_named(
    tmp_path: Path, total: str, index: str, message: str
) -> None:
    result, ran = run(tmp_path, passing(NAMES), TEST_TOTAL_SHARDS=total, TEST_SHARD_INDEX=index)
    assert result.returncode == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr
    assert ran == []
