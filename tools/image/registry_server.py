"""A local OCI registry on 127.0.0.1 for the :push targets' default repository.

Usage: `tools/bazel run //tools/image:registry_server [-- --port 5000 --root DIR --htpasswd FILE]`

Runs Debian's docker-registry (CNCF distribution) in the foreground with its own
configuration: listens on 127.0.0.1 only, stores under --root (default
~/.cache/slipway/registry), optional htpasswd (bcrypt) authentication. Stop it
with Ctrl-C.

Errors: exits 1 with a message when docker-registry is not installed, the port
is taken, or the server does not answer within --timeout seconds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path


def write_config(path: Path, port: int, root: Path, htpasswd: Path | None) -> None:
    auth = f"auth:\n  htpasswd:\n    realm: slipway\n    path: {htpasswd}\n" if htpasswd else ""
    path.write_text(
        "version: 0.1\n"
        "log:\n  level: info\n  accesslog:\n    disabled: false\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  headers:\n    X-Content-Type-Options: [nosniff]\n"
        + auth
    )


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Waits for /v2/ to answer (200, or 401 with authentication).

    Raises:
        RuntimeError: the server exited or did not answer within `timeout` s.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited with status {proc.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
            return
        except urllib.error.HTTPError as err:
            if err.code == 401:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"docker-registry did not answer on 127.0.0.1:{port} within {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=5000)
    parser.add_argument("--root", type=Path, default=Path.home() / ".cache/slipway/registry")
    parser.add_argument(
        "--htpasswd", type=Path, help="bcrypt htpasswd file: require authentication"
    )
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    server = shutil.which("docker-registry")
    if server is None:
        print(
            "registry: error: docker-registry not found (Debian package docker-registry)",
            file=sys.stderr,
        )
        return 1
    if not port_free(args.port):
        print(f"registry: error: 127.0.0.1:{args.port} is already in use", file=sys.stderr)
        return 1
    if args.htpasswd and not args.htpasswd.is_file():
        print(f"registry: error: htpasswd file {args.htpasswd} not found", file=sys.stderr)
        return 1
    args.root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="slipway-registry-") as tmp:
        config = Path(tmp) / "config.yml"
        write_config(config, args.port, args.root.resolve(), args.htpasswd)
        proc = subprocess.Popen([server, "serve", str(config)])
        try:
            wait_ready(args.port, proc, args.timeout)
            print(
                f"registry: serving on http://127.0.0.1:{args.port} (storage {args.root}); Ctrl-C stops it",
                flush=True,
            )
            signal.signal(signal.SIGTERM, lambda *_: proc.terminate())
            return proc.wait()
        except RuntimeError as err:
            print(f"registry: error: {err}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 0
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=10)


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main())
