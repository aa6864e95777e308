"""Resolve packages.txt into debs.lock.json: every .deb of the image base, pinned.

Usage: `tools/bazel run //tools/image/base:lock [-- --mirror URL --security-mirror URL]`

apt-get resolves the dependencies against Debian bookworm (with its security and
updates suites) in a private state directory, so the host's own apt state is
neither read nor changed. Packages listed under EXCLUDED are declared installed
to apt: they exist for maintainer scripts (which an image build never runs) or
for package management, and would only add size.

The lock lists, in a fixed order, name, version, full URL (security updates live
in another archive), SHA256 and size of each package.

Errors: exits 1 naming the failing step (apt-get update or apt-get install).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SUITE = "bookworm"
ARCH = "amd64"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
# Needed only to run maintainer scripts or to manage packages inside the image.
EXCLUDED = (
    "debconf",
    "debconf-2.0",
    "perl-base",
    "dpkg",
    "install-info",
    "init-system-helpers",
    "libc-bin",
)
# apt-get --print-uris: 'URL' NAME_VERSION_ARCH.deb SIZE [HASH]
_URI_LINE = re.compile(r"^'(?P<url>[^']+)' (?P<file>\S+) (?P<size>\d+)")


def read_packages(path: Path) -> list[str]:
    names = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line)
    if not names:
        raise SystemExit(f"lock: error: {path} lists no packages")
    return names


def apt(state: Path, *args: str, tool: str = "apt-get") -> subprocess.CompletedProcess[str]:
    opts = [
        f"-oDir::State={state}/state",
        f"-oDir::State::status={state}/status",
        f"-oDir::Cache={state}/cache",
        f"-oDir::Etc::sourcelist={state}/sources.list",
        "-oDir::Etc::sourceparts=-",
        "-oDir::Etc::preferences=/dev/null",
        "-oDir::Etc::preferencesparts=-",
        f"-oAPT::Architecture={ARCH}",
        "-oAPT::Architectures::=" + ARCH,
        "-oAPT::Install-Recommends=false",
        "-oAcquire::Languages=none",
        "-oDebug::NoLocking=true",
    ]
    return subprocess.run([tool, "-q", *opts, *args], capture_output=True, text=True)


def resolve(packages: list[str], mirror: str, security_mirror: str) -> list[dict[str, object]]:
    with tempfile.TemporaryDirectory(prefix="slipway-lock-") as tmp:
        state = Path(tmp)
        for sub in ("state/lists/partial", "cache/archives/partial"):
            (state / sub).mkdir(parents=True)
        signed = f"[arch={ARCH} signed-by={KEYRING}]"
        (state / "sources.list").write_text(
            f"deb {signed} {mirror} {SUITE} main\n"
            f"deb {signed} {mirror} {SUITE}-updates main\n"
            f"deb {signed} {security_mirror} {SUITE}-security main\n"
        )
        (state / "status").write_text(
            "".join(
                f"Package: {name}\nStatus: install ok installed\nVersion: 999\n"
                f"Architecture: all\nProvides: {name}\nDescription: excluded\n\n"
                for name in EXCLUDED
            )
        )
        done = apt(state, "update")
        if done.returncode != 0:
            raise SystemExit(f"lock: error: apt-get update failed:\n{done.stderr}")
        done = apt(state, "install", "--print-uris", "-y", *packages)
        if done.returncode != 0:
            raise SystemExit(
                f"lock: error: apt-get install could not resolve {packages}:\n{done.stderr}"
            )
        entries = []
        for line in done.stdout.splitlines():
            match = _URI_LINE.match(line)
            if match:
                name, version, _ = match["file"].split("_", 2)
                version = version.replace("%3a", ":")
                entries.append({"name": name, "version": version, "url": match["url"]})
        if not entries:
            raise SystemExit(f"lock: error: apt-get printed no package URLs:\n{done.stdout}")
        # --print-uris gives no SHA256 for every archive; the package index does.
        shown = apt(
            state, "show", *(f"{e['name']}={e['version']}" for e in entries), tool="apt-cache"
        )
        if shown.returncode != 0:
            raise SystemExit(f"lock: error: apt-cache show failed:\n{shown.stderr}")
    index = {}
    for stanza in shown.stdout.split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z0-9-]+): (.*)$", stanza, re.M))
        if "SHA256" in fields:
            index[(fields["Package"], fields["Version"])] = fields
    for entry in entries:
        fields = index.get((entry["name"], entry["version"]))
        if fields is None:
            raise SystemExit(f"lock: error: no index entry for {entry['name']} {entry['version']}")
        entry["sha256"] = fields["SHA256"]
        entry["size"] = int(fields["Size"])
    return sorted(entries, key=lambda entry: str(entry["name"]))


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent
    workspace = Path(os.environ.get("BUILD_WORKSPACE_DIRECTORY", here.parents[2]))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--packages", type=Path, default=workspace / "tools/image/base/packages.txt"
    )
    parser.add_argument("--out", type=Path, default=workspace / "tools/image/base/debs.lock.json")
    parser.add_argument("--mirror", default="http://deb.debian.org/debian")
    parser.add_argument("--security-mirror", default="http://deb.debian.org/debian-security")
    args = parser.parse_args(argv)
    if shutil.which("apt-get") is None:
        raise SystemExit("lock: error: apt-get not found (the lock is made with Debian's apt)")
    entries = resolve(read_packages(args.packages), args.mirror, args.security_mirror)
    lock = {"suite": SUITE, "architecture": ARCH, "packages": entries}
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(lock, indent=2) + "\n")
    tmp.replace(args.out)
    size = sum(int(str(entry["size"])) for entry in entries)
    print(f"lock: {len(entries)} packages, {size / 1e6:.1f} MB, written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
