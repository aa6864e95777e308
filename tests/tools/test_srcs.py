"""The source subsets the nested-Bazel tests copy (tools/srcs.bzl, //:BUILD.bazel).

Each list must hold what its build reads and leave out what it does not, or a
change to a left-out file would rerun the test for nothing (too much kept) or
the nested build would fail on a missing file (too little).
"""

from pathlib import Path


def listing(name: str) -> set[str]:
    """The paths in a copy of a source subset's list (//tests/tools:source_subset_lists)."""
    return set((Path("tests/tools") / name).read_text().splitlines())


def test_build_srcs_leave_out_tests_and_docs() -> None:
    build = listing("build_srcs.txt")
    assert {"lib/slipway/metrics.py", "service/app.py", "tools/bazel", "MODULE.bazel"} <= build
    assert not [p for p in build if p.startswith("tests/") or p.endswith(".md")]


def test_processing_build_srcs_keep_only_what_the_processing_build_reads() -> None:
    build, processing = listing("build_srcs.txt"), listing("processing_build_srcs.txt")
    assert processing <= build
    # The job, the library modules its binary runs, and the BUILD files Bazel loads.
    assert {
        "jobs/processing/main.py",
        "jobs/processing/BUILD.bazel",
        "lib/BUILD.bazel",
        "lib/slipway/__init__.py",
        "lib/slipway/data.py",
        "tools/image/image.bzl",
    } <= processing
    # Modules only other binaries run, other jobs, the service.
    left_out = {
        "lib/slipway/metrics.py",
        "lib/slipway/models.py",
        "lib/slipway/workflows/train.py",
        "jobs/training/main.py",
        "service/app.py",
    }
    assert not left_out & processing
