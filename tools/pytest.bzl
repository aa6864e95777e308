"""py_pytest_test: one Bazel test target that runs one pytest file.

Slipway's single way to declare a test: `tests/` mirrors `lib/`, `jobs/`,
`service/` and `tools/`, and each `test_*.py` there gets one target, so Bazel
caches and reports each file on its own. A long file with independent tests
sets `shard_count`: tools/pytest_main.py runs each shard's share of them.
"""

load("@pypi//:requirements.bzl", "requirement")
load("@rules_python//python:defs.bzl", "py_test")

def py_pytest_test(name, srcs, deps = [], data = [], args = [], **kwargs):
    """Runs the pytest file `srcs[0]` (with conftest.py files) under py_test.

    Args:
        name: target name, by convention the file name without `.py`.
        srcs: the test file (`<name>.py`, else the first), then helper modules
            and conftest.py files.
        deps: libraries the test imports; pytest and the shared conftest are
            added here so a BUILD file never repeats them.
        data: files and binaries the test reads or runs (runfiles).
        args: extra pytest arguments.
        **kwargs: passed to py_test (size, timeout, tags, env, ...).
    """

    # The file named after the target, wherever the formatter sorted it.
    main_src = name + ".py" if name + ".py" in srcs else srcs[0]

    # Outside the sandbox, runfiles links lead into the work tree, and Python
    # (or MLflow, which imports a model's code file by its real path) would
    # write __pycache__ there: that changes the package's globs, and the next
    # build reloads and re-analyses it. The pip packages' bytecode is built.
    if "no-sandbox" in kwargs.get("tags", []):
        kwargs["env"] = {"PYTHONDONTWRITEBYTECODE": "1"} | kwargs.get("env", {})

    # Bazel reserves one CPU for a test and runs others beside it: one torch
    # (OpenMP) thread in the test and the jobs it starts. With two threads each, two
    # trainings side by side on two cores spin in OpenMP's barriers: 72-92 CPU-s
    # each in test_kfp_local, 16 with one thread.
    kwargs["env"] = {"OMP_NUM_THREADS": "1"} | kwargs.get("env", {})
    py_test(
        name = name,
        srcs = srcs + [Label("//tools:pytest_main.py")],
        main = Label("//tools:pytest_main.py"),
        args = ["$(rootpath %s)" % main_src] + args,
        deps = deps + [
            requirement("pytest"),
            Label("//tests:conftest"),
        ],
        data = data,
        **kwargs
    )
