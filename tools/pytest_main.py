"""Entry point of every py_pytest_test target: runs pytest on the given file.

Under `bazel test` the test runs inside its runfiles tree; the rootdir is the
runfiles copy of the workspace, so conftest.py files and pyproject.toml's
pytest settings apply as they do in a plain checkout. JUnit XML goes where
Bazel asks for it (XML_OUTPUT_FILE).

A target with `shard_count = N` runs as N test actions; Bazel gives each its
index in TEST_SHARD_INDEX and the count in TEST_TOTAL_SHARDS
(https://bazel.build/reference/test-encyclopedia#test-sharding). Shard i runs
the file's tests i, i + N, i + 2N, ... in collection (definition) order.
"""

import os
import sys
from pathlib import Path

import pytest


class Shard:
    """A pytest plugin that keeps one shard's tests: items[index::total].

    Round robin in definition order, not pytest-shard's hash of the test ID:
    a file holds a handful of long tests, and a hash may put all of them in
    one shard.
    """

    def __init__(self, index: int, total: int) -> None:
        self.index = index
        self.total = total
        self.collected = 0

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        self.collected = len(items)
        dropped = [item for i, item in enumerate(items) if i % self.total != self.index]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = items[self.index :: self.total]


def shard_from_environment() -> Shard | None:
    """The shard Bazel asks for, or None when the test is not sharded.

    Raises:
        ValueError: TEST_TOTAL_SHARDS or TEST_SHARD_INDEX is not an integer,
            or the index is not in [0, total).
    """
    total_text = os.environ.get("TEST_TOTAL_SHARDS", "")
    if total_text in ("", "0", "1"):
        return None
    index_text = os.environ.get("TEST_SHARD_INDEX", "")
    try:
        total, index = int(total_text), int(index_text)
    except ValueError:
        raise ValueError(
            f"TEST_TOTAL_SHARDS={total_text!r} and TEST_SHARD_INDEX={index_text!r} must be integers"
        ) from None
    if not 0 <= index < total:
        raise ValueError(f"TEST_SHARD_INDEX={index} is not in [0, TEST_TOTAL_SHARDS={total})")
    # Tells Bazel this runner shards; without it, Bazel fails a sharded test.
    status = os.environ.get("TEST_SHARD_STATUS_FILE")
    if status:
        Path(status).touch()
    return Shard(index, total)


def main() -> int:
    args = sys.argv[1:]
    root = os.getcwd()
    pytest_args = [
        "--rootdir",
        root,
        "--confcutdir",
        root,
        "-p",
        "no:cacheprovider",
        "-v",
        *args,
    ]
    junit = os.environ.get("XML_OUTPUT_FILE")
    if junit:
        pytest_args.append(f"--junitxml={junit}")
    try:
        shard = shard_from_environment()
    except ValueError as error:
        print(f"pytest_main: {error}", file=sys.stderr)
        return int(pytest.ExitCode.USAGE_ERROR)
    if shard is None:
        return pytest.main(pytest_args)
    code = pytest.main(pytest_args, plugins=[shard])
    # A file with fewer tests than shards leaves some shards empty: not a failure.
    if code == pytest.ExitCode.NO_TESTS_COLLECTED and shard.collected:
        return int(pytest.ExitCode.OK)
    return code


if __name__ == "__main__":
    sys.exit(main())
