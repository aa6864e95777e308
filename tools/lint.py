"""Slipway's style checks: buildifier for Starlark, ruff for Python, shellcheck for shell.

`tools/bazel run //tools:lint` prints what `tools/bazel test //...` would fail
on; `tools/bazel run //tools:format` rewrites the files in place. Every
finding is one line, `path:line: tool: message`, so editors can jump to it.

Rules: ruff's rule selection and settings live in pyproject.toml
(`[tool.ruff]`); buildifier uses its default formatting and its default set of
lint warnings (`-lint=warn`).
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

STARLARK_NAMES = {"BUILD", "BUILD.bazel", "WORKSPACE", "MODULE.bazel", "REPO.bazel"}
PYTHON_DIRS = ("lib", "jobs", "service", "tools", "tests")


def source_files(root: Path) -> list[Path]:
    """Files under version control or new and not ignored, relative to `root`.

    Falls back to walking the tree (minus hidden and `bazel-*` folders) where
    `root` is not a git work tree.
    """
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=root,
            capture_output=True,
            check=True,
        ).stdout.decode()
        return sorted(Path(p) for p in listed.split("\0") if p and (root / p).is_file())
    except (OSError, subprocess.CalledProcessError):
        found = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if not d.startswith((".", "bazel-"))]
            found += [Path(dirpath, f).relative_to(root) for f in filenames]
        return sorted(found)


def is_starlark(path: Path) -> bool:
    return path.name in STARLARK_NAMES or path.suffix == ".bzl"


def is_shell(root: Path, path: Path) -> bool:
    """Shell scripts: `*.sh`, `*.sh.tpl` (rule templates) and files with a sh/bash shebang."""
    if path.name.endswith((".sh", ".sh.tpl")):
        return True
    try:
        with open(root / path, "rb") as fh:
            first = fh.readline(100)
    except OSError:
        return False
    return re.match(rb"#!\s*(/usr/bin/env\s+)?(/bin/|/usr/bin/)?(ba)?sh\b", first) is not None


def shell_findings(shellcheck: str, root: Path, files: Sequence[Path]) -> list[str]:
    """shellcheck's warnings (all severities), as `path:line: shellcheck: message [SCnnnn]`."""
    if not files:
        return []
    # Templates are bash once their placeholders are filled in.
    done = run_tool(
        [shellcheck, "--format=gcc", "--shell=bash", *(str(f) for f in files)], cwd=root
    )
    findings = []
    for line in done.stdout.splitlines():
        match = re.match(r"^(.*?):(\d+):\d+: (\w+): (.*)$", line)
        if match:
            findings.append(f"{match[1]}:{match[2]}: shellcheck: {match[3]}: {match[4]}")
    if done.returncode not in (0, 1) or (done.returncode == 1 and not findings):
        findings.append(f"{files[0]}:1: shellcheck: {done.stderr.strip() or 'failed'}")
    return findings


def is_checked_python(path: Path) -> bool:
    return path.suffix == ".py" and path.parts[0] in PYTHON_DIRS


def first_changed_line(original: str, formatted: str) -> int:
    """1-based line number of the first line that formatting changes."""
    matcher = difflib.SequenceMatcher(None, original.splitlines(), formatted.splitlines())
    for tag, i1, _, _, _ in matcher.get_opcodes():
        if tag != "equal":
            return i1 + 1
    return 1


def run_tool(
    command: Sequence[str], stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(command), input=stdin, capture_output=True, text=True, cwd=cwd, check=False
    )


def buildifier_findings(buildifier: str, root: Path, files: Iterable[Path], fix: bool) -> list[str]:
    findings = []
    for path in files:
        text = (root / path).read_text()
        formatted = run_tool([buildifier, f"-path={path}"], stdin=text)
        if formatted.returncode not in (0, 4):
            findings.append(f"{path}:1: buildifier: {formatted.stderr.strip()}")
            continue
        if formatted.stdout != text:
            if fix:
                (root / path).write_text(formatted.stdout)
            else:
                line = first_changed_line(text, formatted.stdout)
                findings.append(
                    f"{path}:{line}: buildifier: not formatted (tools/bazel run //tools:format fixes it)"
                )
        lint = run_tool(
            [buildifier, "-mode=check", "-lint=warn", "-format=text", str(path)], cwd=root
        )
        for message in lint.stderr.splitlines() + lint.stdout.splitlines():
            if message.startswith(str(path) + ":"):
                location, _, rest = message.partition(": ")
                findings.append(f"{location}: buildifier: {rest}")
    return findings


def ruff_findings(ruff: str, root: Path, files: Sequence[Path], fix: bool) -> list[str]:
    if not files:
        return []
    paths = [str(p) for p in files]
    findings = []
    if fix:
        run_tool([ruff, "check", "--fix", "--quiet", *paths], cwd=root)
        run_tool([ruff, "format", "--quiet", *paths], cwd=root)
    check = run_tool([ruff, "check", "--output-format=concise", "--quiet", *paths], cwd=root)
    for message in check.stdout.splitlines():
        if ":" in message and not message.startswith(("Found ", "[*]")):
            location, _, rest = message.partition(": ")
            findings.append(f"{location}: ruff: {rest}")
    if check.returncode not in (0, 1):
        findings.append(f"pyproject.toml:1: ruff: {check.stderr.strip()}")
    # Concise output names the first changed line: `path:line:col: unformatted: ...`.
    unformatted = run_tool([ruff, "format", "--check", "--output-format=concise", *paths], cwd=root)
    for message in unformatted.stdout.splitlines():
        location, _, rest = message.partition(": unformatted: ")
        if rest:
            path, line = location.split(":")[:2]
            findings.append(
                f"{path}:{line}: ruff format: not formatted (tools/bazel run //tools:format fixes it)"
            )
    return findings


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root", type=Path, help="tree to check (default: the workspace under `bazel run`)"
    )
    parser.add_argument(
        "--fix", action="store_true", help="rewrite files in place, then report what is left"
    )
    parser.add_argument("--buildifier", default=os.environ.get("BUILDIFIER", "buildifier"))
    parser.add_argument("--ruff", default=os.environ.get("RUFF", "ruff"))
    parser.add_argument("--shellcheck", default=os.environ.get("SHELLCHECK", "shellcheck"))
    args = parser.parse_args(argv)

    root = args.root or Path(os.environ.get("BUILD_WORKSPACE_DIRECTORY", "."))
    # Tool paths from Bazel are relative to the runfiles; the tools run in `root`.
    buildifier, ruff, shellcheck = (
        os.path.abspath(t) if os.sep in t else t
        for t in (args.buildifier, args.ruff, args.shellcheck)
    )
    files = source_files(root)
    findings = buildifier_findings(buildifier, root, [f for f in files if is_starlark(f)], args.fix)
    findings += ruff_findings(ruff, root, [f for f in files if is_checked_python(f)], args.fix)
    findings += shell_findings(shellcheck, root, [f for f in files if is_shell(root, f)])
    for finding in findings:
        print(finding)
    if findings:
        print(f"{len(findings)} style findings", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
