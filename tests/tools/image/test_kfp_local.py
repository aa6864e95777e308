"""The KFP-compiled pipeline really runs: `kfp.local`'s DockerRunner, podman, a registry.

The four job images are pushed to a real registry on 127.0.0.1 and pinned by digest
in the compiled file (//jobs/pipelines:kfp). KFP's own local execution loads that file
and runs each step in a container through podman's Docker-compatible API
(`podman system service`); pulls go to the registry. A real `mlflow server` on
127.0.0.1 is the model registry. The outcome is compared with the local runner's
(`jobs/pipelines/main.py`) on the same seed.

kfp 2.17 removes each container as it exits and reports success when the container
is gone before its exit code was read (podman: often). So this checks outcomes (the
report, the registry, the predictions), not only that the run did not raise.
"""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from slipway.pipelines import STEP_NAMES
from slipway.registry import Registry

from jobs.pipelines import kfp_pipeline

NUM_SHARDS = 2
# 269 test rows in batches of 64: both shards get rows (shards split by batches).
BATCH_SIZE = 64
# The local runner's data dir and its process, running beside the KFP run.
LocalRun = tuple[Path, Future[subprocess.CompletedProcess[str]]]


def run(cmd: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def registry_host(
    tmp_path_factory: pytest.TempPathFactory, push_images: Callable[[Path, Iterable[str]], str]
) -> str:
    """A registry on 127.0.0.1 holding the four step images (pushed by their :push)."""
    return push_images(tmp_path_factory.mktemp("kfp-registry") / "root", STEP_NAMES)


@pytest.fixture(scope="module")
def docker_host(
    tmp_path_factory: pytest.TempPathFactory,
    registry_host: str,
    make_podman_env: Callable[[Path], dict[str, str]],
) -> Iterator[str]:
    """`podman system service` on a unix socket, pulling from the test registry over http."""
    env = make_podman_env(tmp_path_factory.mktemp("kfp-podman"))
    with open(env["CONTAINERS_REGISTRIES_CONF"], "a") as conf:
        conf.write(f'\n[[registry]]\nlocation = "{registry_host}"\ninsecure = true\n')
    sock_dir = Path(tempfile.mkdtemp(prefix="slipway-kfp-", dir="/tmp"))  # short: 108-byte limit
    uri = f"unix://{sock_dir / 'podman.sock'}"
    log = open(sock_dir / "service.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        ["podman", "system", "service", "--time=0", uri],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    import docker

    deadline = time.monotonic() + 60
    while True:
        try:
            docker.DockerClient(base_url=uri).version()
            break
        except Exception as err:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"podman system service did not answer: {err}\n"
                    + (sock_dir / "service.log").read_text()[-2000:]
                ) from err
            time.sleep(0.2)
    try:
        yield uri
    finally:
        run(["podman", "rm", "--all", "--force"], env=env)
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
        shutil.rmtree(sock_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def local_run_started(tmp_path_factory: pytest.TempPathFactory, run_job: Any) -> Iterator[LocalRun]:
    """The local runner on the same seed (embedded registry), started in a thread.

    It needs no image, registry or container, so it runs beside the KFP run instead of
    after it: this test often runs last, when a core would otherwise sit idle.
    Returns its data dir and the finished process to come.
    """
    data_dir = tmp_path_factory.mktemp("local-run") / "data"
    with ThreadPoolExecutor(max_workers=1) as pool:
        args = ("pipelines", "--data-dir", str(data_dir), "--seed", "0")
        yield data_dir, pool.submit(run_job, *args, timeout=900)


@pytest.fixture(scope="module")
def kfp_run(
    local_run_started: LocalRun,
    tmp_path_factory: pytest.TempPathFactory,
    registry_host: str,
    docker_host: str,
    mlflow_server: str,
) -> Path:
    """Compile, then run the pipeline with kfp.local; returns the data dir.

    Takes `local_run_started` first so that the local run starts before the pushes.

    The data dir is under the pipeline root, which kfp.local mounts at the same path
    and keeps (it removes its workspace, the default data dir, when the run ends).
    """
    import kfp.local
    from kfp import components

    base = tmp_path_factory.mktemp("kfp-run")
    spec = base / "digits.yaml"
    assert kfp_pipeline.main(["--output", str(spec), "--registry", registry_host]) == 0
    pipeline_root = base / "pipeline-root"
    pipeline_root.mkdir()
    pipeline_root.chmod(0o777)  # the containers run as uid 10001
    data_dir = pipeline_root / "slipway-data"
    os.environ["DOCKER_HOST"] = docker_host
    try:
        kfp.local.init(
            # One CPU per container: its training takes one torch thread (the
            # CPUs it may run on), as the local run does under Bazel's
            # OMP_NUM_THREADS=1, so both train alike, side by side.
            runner=kfp.local.DockerRunner(
                network_mode="host", cpuset_cpus=str(min(os.sched_getaffinity(0)))
            ),
            pipeline_root=str(pipeline_root),
            workspace_root=str(base / "workspace"),
        )
        pipeline = components.load_component_from_file(str(spec))
        pipeline(
            data_dir=str(data_dir),
            tracking_uri=mlflow_server,
            seed=0,
            inference_batch_size=BATCH_SIZE,
        )
    finally:
        del os.environ["DOCKER_HOST"]
    return data_dir


@pytest.fixture(scope="module")
def local_run(local_run_started: LocalRun) -> Path:
    """The local runner's data dir, once it has finished."""
    data_dir, future = local_run_started
    done = future.result()
    # The same rows, scored by the local runner's one inference process.
    assert done.returncode == 0, done.stderr[-3000:]
    return data_dir


def report(data_dir: Path) -> dict[str, Any]:
    path = data_dir / "reports" / "evaluation" / "report.json"
    assert path.is_file(), f"no evaluation report at {path}: the evaluation step did not run"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def predictions(data_dir: Path, pattern: str) -> dict[Any, tuple[Any, ...]]:
    """id -> the rest of the row, over every predictions file matching `pattern`."""
    rows: dict[Any, tuple[Any, ...]] = {}
    files = sorted((data_dir / "predictions").glob(pattern))
    assert files, f"no predictions {pattern} in {data_dir / 'predictions'}"
    for path in files:
        table = pq.read_table(path).to_pylist()
        for row in table:
            key, *rest = row.values()
            assert key not in rows, f"row {key} predicted twice ({path.name})"
            rows[key] = tuple(rest)
    return rows


def test_champion_of_the_kfp_run_is_registered_and_accurate(
    kfp_run: Path, mlflow_server: str
) -> None:
    champion = report(kfp_run)["champion"]
    assert champion is not None, "the candidate was not promoted"
    assert champion["test"]["accuracy"] >= 0.95
    version = Registry(mlflow_server).find_version(champion["name"], "champion")
    assert version is not None and version.version == champion["version"]


def test_every_test_row_is_predicted_exactly_once_across_the_shards(kfp_run: Path) -> None:
    shards = sorted((kfp_run / "predictions").glob("*.shard-*-of-*.parquet"))
    assert [p.name for p in shards] == [
        f"test.predictions.shard-{i:05d}-of-{NUM_SHARDS:05d}.parquet" for i in range(NUM_SHARDS)
    ]
    predicted = predictions(kfp_run, "*.shard-*.parquet")
    for shard in shards:
        assert pq.read_metadata(shard).num_rows > 0, f"{shard.name} is empty"
    latest = (kfp_run / "processed" / "LATEST").read_text().strip()
    test_ids = pq.read_table(kfp_run / "processed" / latest / "test.parquet").column(0).to_pylist()
    assert sorted(predicted) == sorted(test_ids)


def test_kfp_run_matches_the_local_runner_on_the_same_seed(kfp_run: Path, local_run: Path) -> None:
    kfp_champion, local_champion = report(kfp_run)["champion"], report(local_run)["champion"]
    assert kfp_champion["test"] == local_champion["test"]
    kfp_rows = predictions(kfp_run, "*.shard-*.parquet")
    local_rows = predictions(local_run, "*.parquet")
    assert {key: label for key, (label, _) in kfp_rows.items()} == {
        key: label for key, (label, _) in local_rows.items()
    }
    # The KFP run scores 64-row batches, the local runner one batch of 269: torch's
    # CPU matrix products may round differently with another batch shape (seen
    # here: 0.80315870 against 0.80315858, 2 float32 ulps).
    for key, (_, probability) in kfp_rows.items():
        assert probability == pytest.approx(local_rows[key][1], abs=1e-6), f"row {key}"
