"""`bazel run //<job or service>:image`: load the image, then run it.

    tools/bazel run //jobs/training:image -- --help     run the job with these args
    tools/bazel run //jobs/processing:image -- -v "$PWD/data:/data" --data-dir /data
                                                        (-e/--env, -v/--volume go to the engine)
    tools/bazel run //service:image                     start the service, print its URL
    tools/bazel run //service:image -- --norun          only load (skipped when the
                                                        engine already holds the image)

The engine is Docker where a Docker engine answers, else podman. Containers use
the host's network (the service listens on 127.0.0.1:$SLIPWAY_PORT, default
8080) and run as the image's non-root user. The service starts detached, is
waited for until /v2/health/live answers, and is stopped with `<engine> stop`.

Errors: exits 1 naming the step (load, run, start) that failed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

# Beside this file in the runfiles (the script's directory is on sys.path).
from load_image import engine, load, runfile


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--oci-load", required=True, help="the oci_load executable (rootpath)")
    parser.add_argument("--image", required=True, help="the oci_image layout (rootpath)")
    parser.add_argument("--tag", required=True, help="repository:tag the load gives the image")
    parser.add_argument("--kind", choices=("job", "service"), default="job")
    parser.add_argument(
        "args", nargs=argparse.REMAINDER, help="--norun, or arguments for the container"
    )
    args = parser.parse_args(argv)
    rest = args.args[1:] if args.args[:1] == ["--"] else args.args
    norun = "--norun" in rest
    rest = [a for a in rest if a != "--norun"]
    if load(runfile(args.oci_load), runfile(args.image), args.tag) != 0:
        return 1
    if norun:
        print(f"image: loaded {args.tag}")
        return 0
    cli = engine()
    if args.kind == "job":
        job = [cli, "run", "--rm", "--network", "host", *rest_env(rest), args.tag, *rest_args(rest)]
        return subprocess.run(job).returncode
    port = os.environ.get("SLIPWAY_PORT", "8080")
    name = f"slipway-service-{port}"
    subprocess.run([cli, "rm", "--force", name], capture_output=True)
    started = subprocess.run(
        [
            cli,
            "run",
            "--detach",
            "--rm",
            "--name",
            name,
            "--network",
            "host",
            "--env",
            f"SLIPWAY_BIND=127.0.0.1:{port}",
            *rest_env(rest),
            args.tag,
            *rest_args(rest),
        ],
    )
    if started.returncode != 0:
        print("image: error: starting the service container failed (see above)", file=sys.stderr)
        return 1
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/v2/health/live", timeout=1)
            print(
                f"image: service running at {url} (container {name}; stop: {Path(cli).name} stop {name})"
            )
            return 0
        except OSError:
            time.sleep(0.2)
    print(
        f"image: error: the service did not answer at {url} within 60 s; logs: {Path(cli).name} logs {name}",
        file=sys.stderr,
    )
    return 1


def rest_env(rest: list[str]) -> list[str]:
    """`-e K=V` / `--env K=V` pairs among the arguments go to the engine."""
    out: list[str] = []
    it = iter(rest)
    for arg in it:
        if arg in ("-e", "--env", "-v", "--volume"):
            out += [arg, next(it, "")]
    return out


def rest_args(rest: list[str]) -> list[str]:
    out: list[str] = []
    it = iter(rest)
    for arg in it:
        if arg in ("-e", "--env", "-v", "--volume"):
            next(it, None)
        else:
            out.append(arg)
    return out


if __name__ == "__main__":
    sys.exit(main())
