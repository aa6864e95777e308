"""`bazel run //<job or service>:image`: load the image, then run it.

    tools/bazel run //jobs/training:image -- --help     run the job with these args
    tools/bazel run //jobs/processing:image -- -v "$PWD/data:/data" --data-dir /data
                                                        (-e/--env, -v/--volume go to the engine)
    tools/bazel run //service:image                     serve the champion; print the URL
    tools/bazel run //service:image -- --stop           stop that service container
    tools/bazel run //service:image -- --norun          only load (skipped when the
                                                        engine already holds the image)

The engine is Docker where a Docker engine answers, else podman. Containers use
the host's network and run as the image's non-root user, with
SLIPWAY_IMAGE_DIGEST set to the image's manifest digest (lineage). The service
listens on 127.0.0.1:$SLIPWAY_PORT (default 8080) and serves
models:/digits-classifier@champion from the registry the jobs wrote: a tracking
server (MLFLOW_TRACKING_URI) or the embedded one in the data dir
(SLIPWAY_DATA_DIR, default <workspace>/slipway-data, mounted read-only). It is
started detached and reported only once /v2/health/ready answers.

Errors: exits 1 naming the step (load, run, start) that failed; a service that
does not get ready is removed and its last log lines are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tools.image.load_image import engine, layout_digests, load, runfile

MODEL_NAME = "digits-classifier"
# Loading torch and the model takes ~10 s on 2 cores; a cold registry longer.
READY_SECONDS = 120


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
    port = os.environ.get("SLIPWAY_PORT", "8080")
    name = f"slipway-service-{port}"
    if args.kind == "service" and "--stop" in rest:
        return stop(engine(), name)
    norun = "--norun" in rest
    rest = [a for a in rest if a != "--norun"]
    layout = runfile(args.image)
    if load(runfile(args.oci_load), layout, args.tag) != 0:
        return 1
    if norun:
        print(f"image: loaded {args.tag}")
        return 0
    cli = engine()
    # The image learns its own digest from its environment (slipway.lineage).
    digest = ["--env", f"SLIPWAY_IMAGE_DIGEST=sha256:{layout_digests(layout)[0]}"]
    if args.kind == "job":
        job = [cli, "run", "--rm", "--network", "host", *digest, *rest_env(rest), args.tag]
        return subprocess.run([*job, *rest_args(rest)]).returncode
    return start_service(cli, name, port, [*digest, *registry_env(), *rest_env(rest)], args, rest)


def registry_env() -> list[str]:
    """Engine flags that let the service read the registry the jobs wrote.

    A tracking server (SLIPWAY_TRACKING_URI or MLFLOW_TRACKING_URI) is passed on;
    else the embedded registry's data dir (SLIPWAY_DATA_DIR, default
    <workspace>/slipway-data, as for the jobs) is mounted read-only at the same
    path, where its artifact paths point.

    Raises:
        SystemExit: no tracking server is set and the data dir does not exist.
    """
    for key in ("SLIPWAY_TRACKING_URI", "MLFLOW_TRACKING_URI"):
        if os.environ.get(key):
            return ["--env", f"SLIPWAY_TRACKING_URI={os.environ[key]}"]
    workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY", os.getcwd())
    data_dir = Path(os.environ.get("SLIPWAY_DATA_DIR") or Path(workspace) / "slipway-data")
    data_dir = data_dir.absolute()
    if not (data_dir / "mlflow.db").is_file():
        raise SystemExit(
            f"image: error: no embedded registry at {data_dir / 'mlflow.db'}: train and promote "
            "a model first (tools/bazel run //jobs/pipelines), or set MLFLOW_TRACKING_URI"
        )
    return ["--volume", f"{data_dir}:{data_dir}:ro", "--env", f"SLIPWAY_DATA_DIR={data_dir}"]


def start_service(
    cli: str, name: str, port: str, flags: list[str], args: argparse.Namespace, rest: list[str]
) -> int:
    """Starts the service container detached; returns 0 once /v2/health/ready answers."""
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
            *flags,
            args.tag,
            *rest_args(rest),
        ],
        capture_output=True,
        text=True,
    )
    if started.returncode != 0:
        print(
            f"image: error: starting the service container failed:\n{started.stderr}",
            file=sys.stderr,
        )
        return 1
    url = f"http://127.0.0.1:{port}"
    stop_hint = "tools/bazel run //service:image -- --stop"
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        try:
            # Ready first: before the model has loaded, its metadata lists no version.
            # Each request may reach another worker, and each worker loads the model
            # itself: one still loading lists no version either, so ask again.
            urllib.request.urlopen(f"{url}/v2/health/ready", timeout=2).close()
            with urllib.request.urlopen(f"{url}/v2/models/{MODEL_NAME}", timeout=2) as answer:
                versions = json.loads(answer.read()).get("versions") or []
            if not versions:
                raise ValueError("a worker still loading the model")
            print(
                f"image: service ready at {url}, serving {MODEL_NAME} version "
                f"{', '.join(versions)} (container {name}; stop: {stop_hint})"
            )
            return 0
        except (OSError, ValueError):
            running = subprocess.run(
                [cli, "container", "exists", name]
                if Path(cli).name == "podman"
                else [cli, "container", "inspect", name],
                capture_output=True,
            )
            if running.returncode != 0:
                break  # it exited (and --rm removed it)
            time.sleep(0.5)
    logs = subprocess.run([cli, "logs", "--tail", "20", name], capture_output=True, text=True)
    subprocess.run([cli, "rm", "--force", name], capture_output=True)
    print(
        f"image: error: the service at {url} was not ready within {READY_SECONDS} s; "
        f"its last log lines:\n{logs.stdout}{logs.stderr}",
        file=sys.stderr,
    )
    return 1


def stop(cli: str, name: str) -> int:
    """Stops and removes the service container `name`."""
    done = subprocess.run([cli, "rm", "--force", name], capture_output=True, text=True)
    if done.returncode != 0:
        print(f"image: error: cannot stop {name}: {done.stderr.strip()}", file=sys.stderr)
        return 1
    print(
        f"image: stopped {name}"
        if done.stdout.strip()
        else f"image: no container {name} was running"
    )
    return 0


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
