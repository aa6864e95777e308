"""End to end: push every image to a real registry, pull it back and run it.

Needs podman, crane and docker-registry (the offline Bazel's root filesystem
has them; elsewhere install them). The images come from this build: their
push, load and registry targets are data of this test.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

NON_ROOT = "10001:10001"


def run(
    cmd: list[str], env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)


Pushed = tuple[str, dict[str, str], dict[str, Path]]


@pytest.fixture(scope="module")
def pushed(
    tmp_path_factory: pytest.TempPathFactory,
    images: dict[str, Path],
    push_images: Callable[[Path, Iterable[str]], str],
    make_podman_env: Callable[[Path], dict[str, str]],
) -> Iterator[Pushed]:
    """Every image pushed with its tags; yields (registry host:port, podman env, images)."""
    base = tmp_path_factory.mktemp("e2e")
    host = push_images(base / "registry", images)
    env = make_podman_env(base / "podman")
    yield host, env, images


def tags_of(package: Path) -> list[str]:
    return (package / "tags.txt").read_text().split()


def test_every_image_has_its_tags_in_the_registry(pushed: Pushed) -> None:
    host, _, images = pushed
    for name, package in images.items():
        done = run(["crane", "ls", f"{host}/slipway/{name}"])
        assert done.returncode == 0, done.stderr
        assert sorted(done.stdout.split()) == sorted(tags_of(package)), name
        assert all("+" not in tag for tag in tags_of(package))


def test_pushed_digest_is_the_built_digest(pushed: Pushed) -> None:
    host, _, images = pushed
    for name, package in images.items():
        index = json.loads((package / "oci_image/index.json").read_text())
        built = index["manifests"][0]["digest"]
        done = run(["crane", "digest", f"{host}/slipway/{name}:{tags_of(package)[0]}"])
        assert done.stdout.strip() == built, name


def pull(pushed: Pushed, name: str) -> str:
    host, env, images = pushed
    ref = f"{host}/slipway/{name}:{tags_of(images[name])[0]}"
    done = run(["podman", "pull", "--quiet", "--tls-verify=false", ref], env=env)
    assert done.returncode == 0, f"pull {ref}: {done.stderr}"
    return ref


def test_every_image_pulls_and_runs_help_as_non_root(pushed: Pushed) -> None:
    _, env, images = pushed
    for name in images:
        check_help_as_non_root(pushed, env, name)


def check_help_as_non_root(pushed: Pushed, env: dict[str, str], name: str) -> None:
    ref = pull(pushed, name)
    config = json.loads(run(["podman", "image", "inspect", ref], env=env).stdout)[0]["Config"]
    assert config["User"] == NON_ROOT, name
    done = run(["podman", "run", "--rm", ref, "--help"], env=env)
    assert done.returncode == 0, f"{name}: {done.stderr}"
    assert "usage:" in done.stdout.lower(), name
    whoami = run(
        [
            "podman",
            "run",
            "--rm",
            "--entrypoint",
            "/usr/bin/python3.11",
            ref,
            "-c",
            "import os; print(os.getuid(), os.getgid())",
        ],
        env=env,
    )
    assert whoami.stdout.split() == ["10001", "10001"], f"{name}: {whoami.stderr}"


def test_processing_image_processes_a_real_input(pushed: Pushed, tmp_path: Path) -> None:
    from slipway import data

    env = pushed[1]
    ref = pull(pushed, "processing")
    work = tmp_path / "work"
    work.mkdir()
    data.load_digits_frame().to_csv(work / "digits.csv", index=False)
    os.chmod(work, 0o777)  # the container's user (10001) writes into this test's folder
    done = run(
        [
            "podman",
            "run",
            "--rm",
            "-v",
            f"{work}:/data",
            ref,
            "--input",
            "/data/digits.csv",
            "--data-dir",
            "/data",
        ],
        env=env,
    )
    assert done.returncode == 0, done.stderr
    latest = (work / "processed" / "LATEST").read_text().strip()
    manifest = json.loads((work / "processed" / latest / "manifest.json").read_text())
    assert sum(split["rows"] for split in manifest["splits"].values()) == 1797


def test_service_image_serves_an_inference(
    pushed: Pushed, tmp_path: Path, port_finder: Callable[[], int]
) -> None:
    import numpy as np
    from slipway.client import InferenceClient
    from slipway.models import ModelConfig, build_model, save_model_dir

    env = pushed[1]
    ref = pull(pushed, "service")
    model = tmp_path / "model"
    save_model_dir(build_model(ModelConfig()), ModelConfig(), model)
    port = port_finder()
    name = f"slipway-e2e-{port}"
    started = run(
        [
            "podman",
            "run",
            "--detach",
            "--rm",
            "--name",
            name,
            "--network",
            "host",
            "-v",
            f"{model}:/model:ro",
            "-e",
            "SLIPWAY_MODEL_DIR=/model",
            "-e",
            f"SLIPWAY_BIND=127.0.0.1:{port}",
            "-e",
            "SLIPWAY_WORKERS=2",
            ref,
        ],
        env=env,
    )
    assert started.returncode == 0, started.stderr
    try:
        with InferenceClient(f"http://127.0.0.1:{port}") as client:
            client.wait_ready(timeout=120)
            rows = np.zeros((3, 64), dtype=np.float32)
            result = client.infer(rows)
        assert result.label is not None and result.label.shape == (3,)
    finally:
        logs = run(["podman", "logs", name], env=env)
        run(["podman", "stop", "--time", "10", name], env=env)
        print(logs.stdout[-4000:], logs.stderr[-4000:])


def test_load_streams_an_image_only_when_the_engine_lacks_it(pushed: Pushed) -> None:
    _, env, images = pushed
    package = images["processing"]
    tag = "slipway/processing:latest"
    load = [
        str(package / "load"),
        "--oci-load",
        "jobs/processing/oci_load.sh",
        "--image",
        "jobs/processing/oci_image",
        "--tag",
        tag,
    ]
    env = {**env, "RUNFILES_DIR": str(package.parents[2])}
    first = run(load, env=env)
    assert first.returncode == 0 and "not loaded again" not in first.stdout, first.stderr
    image_id = run(["podman", "image", "inspect", "--format", "{{.Id}}", tag], env=env)
    assert image_id.returncode == 0, image_id.stderr
    again = run(load, env=env)
    assert again.returncode == 0 and "is already this image" in again.stdout, again.stderr
    # The tag now names another image (as after a rebuild): loaded again.
    other = pull(pushed, "service")
    assert run(["podman", "tag", other, tag], env=env).returncode == 0
    rebuilt = run(load, env=env)
    assert rebuilt.returncode == 0 and "not loaded again" not in rebuilt.stdout, rebuilt.stderr
    after = run(["podman", "image", "inspect", "--format", "{{.Id}}", tag], env=env)
    assert after.stdout == image_id.stdout, after.stdout


def test_service_image_target_serves_the_registry_champion(
    pushed: Pushed, tmp_path: Path, port_finder: Callable[[], int]
) -> None:
    import numpy as np
    from slipway.client import InferenceClient
    from slipway.models import ModelConfig, build_model, save_model_dir
    from slipway.registry import Registry

    _, env, images = pushed
    # An embedded registry whose champion is version 1, as the main job leaves it.
    data_dir = tmp_path / "data"
    registry = Registry.for_data_dir(data_dir)
    run_id = registry.start_run(run_name="e2e")
    save_model_dir(build_model(ModelConfig()), ModelConfig(), tmp_path / "model")
    registry.log_artifacts(run_id, tmp_path / "model", "model")
    registry.end_run(run_id)
    version = registry.register_model("digits-classifier", run_id).version
    registry.set_alias("digits-classifier", "champion", version)

    port = port_finder()
    package = images["service"]
    image = [
        str(package / "image"),
        "--oci-load",
        "service/oci_load.sh",
        "--image",
        "service/oci_image",
        "--tag",
        "slipway/service:latest",
        "--kind",
        "service",
        "--",
    ]
    env = {
        **env,
        "RUNFILES_DIR": str(package.parents[1]),
        "SLIPWAY_DATA_DIR": str(data_dir),
        "SLIPWAY_PORT": str(port),
    }
    started = run(image, env=env)
    try:
        assert started.returncode == 0, started.stderr
        assert (
            f"image: service ready at http://127.0.0.1:{port}, serving digits-classifier "
            f"version {version} (container slipway-service-{port}; "
            "stop: tools/bazel run //service:image -- --stop)"
        ) in started.stdout
        with InferenceClient(f"http://127.0.0.1:{port}") as client:
            result = client.infer(np.zeros((2, 64), dtype=np.float32))
        assert result.model_version == version
    finally:
        stopped = run([*image, "--stop"], env=env)
    assert stopped.returncode == 0 and f"image: stopped slipway-service-{port}" in stopped.stdout
