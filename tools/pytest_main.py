"""Entry point of every py_pytest_test target: runs pytest on the given file.

Under `bazel test` the test runs inside its runfiles tree; the rootdir is the
runfiles copy of the workspace, so conftest.py files and pyproject.toml's
pytest settings apply as they do in a plain checkout. JUnit XML goes where
Bazel asks for it (XML_OUTPUT_FILE).
"""

import os
import sys

import pytest


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
    return pytest.main(pytest_args)


if __name__ == "__main__":
    sys.exit(main())
