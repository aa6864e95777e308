"""Compile the digits pipeline for Kubeflow Pipelines (KFP v2), from the images we build.

    tools/bazel run //jobs/pipelines:kfp -- --output digits.yaml
    tools/bazel run //jobs/pipelines:kfp -- --output digits.yaml \\
        --release-manifest dist/release/release-1.4.0.json

The same four steps as the local runner (`slipway.pipelines.digits_pipeline`, which
gives every step its arguments), each a container component that runs this
repository's job image pinned by digest; batch inference fans out over
`--num-shards` shards with `dsl.ParallelFor`. Pipeline parameters: `data_dir`
(default: inside KFP's workspace, a volume every step of a run mounts, removed when
the run ends; point it at a volume of your own to keep the data), `tracking_uri`
(empty: the embedded SQLite registry under `data_dir`), `seed`, `min_improvement`
(the promotion policy), `source`, `model_name` and `inference_batch_size` (the
sharding unit).

Image digests come from a release manifest (`--release-manifest`, written by
`//tools/release`) or, without one, from this build's images, named
`<--registry>/slipway/<job>@sha256:...`: push them first with
`tools/bazel run //jobs/<job>:push` (same registry).

The file is written atomically. Errors (exit 1): a manifest that is missing,
unreadable or lacks a step's image; an output name not ending in .yaml or .yml.
"""

# No `from __future__ import annotations`: KFP reads the components' annotations as types.
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from slipway import cli
from slipway.errors import SlipwayError
from slipway.io import atomic_path
from slipway.model_uri import DEFAULT_MODEL_NAME
from slipway.pipelines import STEP_NAMES, digits_pipeline

LOG = logging.getLogger("slipway.jobs.pipelines.kfp")
PIPELINE_NAME = "slipway-digits"
# KFP mounts its workspace at this path in every step (kfp.dsl.constants.WORKSPACE_MOUNT_PATH).
WORKSPACE_MOUNT_PATH = "/kfp-workspace"
DEFAULT_DATA_DIR = f"{WORKSPACE_MOUNT_PATH}/slipway-data"
DEFAULT_REGISTRY = "localhost:5000"
DEFAULT_INFERENCE_BATCH_SIZE = 4096  # the inference job's --batch-size default
# Inside an image the jobs' entry point is the image's ENTRYPOINT; a component gives only args.
_IMAGE_JOBS_DIR = PurePosixPath("/app/jobs")


class KfpError(SlipwayError):
    """The pipeline cannot be compiled (bad manifest, missing image, bad output name)."""


@dataclass(frozen=True)
class StepImage:
    """A step's image: `repository` (`host[:port]/slipway/<job>`) and `digest` (`sha256:<hex>`)."""

    repository: str
    digest: str

    @property
    def reference(self) -> str:
        """The image pinned by digest: `<repository>@sha256:<hex>`."""
        return f"{self.repository}@{self.digest}"


def user_path(path: Path) -> Path:
    """`path` relative to where the user ran the command (`bazel run` runs in the runfiles)."""
    return Path(os.environ.get("BUILD_WORKING_DIRECTORY") or Path.cwd()) / path


def images_from_manifest(path: Path) -> tuple[dict[str, StepImage], str | None]:
    """Each step's image and the release's git commit, from `release-X.Y.Z.json`.

    Raises:
        KfpError: the file is missing or not a release manifest, or lacks a step's image.
    """
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        found = {i["name"]: StepImage(i["repository"], i["digest"]) for i in manifest["images"]}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise KfpError(f"cannot read release manifest {path}: {err}") from None
    missing = [s for s in STEP_NAMES if s not in found]
    if missing:
        raise KfpError(f"release manifest {path} has no image for step(s): {', '.join(missing)}")
    for step in STEP_NAMES:
        if not found[step].digest.startswith("sha256:"):
            raise KfpError(f"release manifest {path}: image {step} has no sha256 digest")
    commit = manifest.get("git_commit")
    return {s: found[s] for s in STEP_NAMES}, commit if isinstance(commit, str) else None


def images_from_build(registry: str) -> dict[str, StepImage]:
    """Each step's image as this build made it (its OCI layout in the runfiles).

    Raises:
        KfpError: an image's layout is not in the runfiles.
    """
    from tools.image.load_image import layout_digests, runfile

    listed = json.loads(runfile("tools/image/images.json").read_text(encoding="utf-8"))
    packages = {i["name"]: i["package"] for i in listed}
    found = {}
    for step in STEP_NAMES:
        layout = runfile(f"{packages[step]}/oci_image")
        if not (layout / "index.json").is_file():
            raise KfpError(f"no image layout for step {step} at {layout}")
        try:
            manifest_hex, _ = layout_digests(layout)
        except SystemExit as err:
            raise KfpError(str(err)) from None
        found[step] = StepImage(f"{registry.rstrip('/')}/slipway/{step}", f"sha256:{manifest_hex}")
    return found


def step_args(step: str, **values: Any) -> list[str]:
    """The arguments of `step` in the local runner's pipeline, given its values as text.

    `values` are KFP placeholders inside a component; `digits_pipeline` passes them on.
    """
    registry = ["--tracking-uri", str(values.pop("tracking_uri"))] if step != "processing" else []
    policy = (
        ["--min-improvement", str(values.pop("min_improvement"))] if step == "evaluation" else []
    )
    pipeline = digits_pipeline(
        _IMAGE_JOBS_DIR,
        PurePosixPath(str(values.pop("data_dir"))),
        registry_args=registry,
        policy_args=policy,
        **{k: str(v) for k, v in values.items()},
    )
    (found,) = (s for s in pipeline.steps if s.name == step)
    return list(found.args)


def build_pipeline(
    images: Mapping[str, StepImage],
    *,
    num_shards: int,
    workspace_size: str,
    git_commit: str | None = None,
) -> Any:
    """The KFP pipeline function (a `kfp.dsl` GraphComponent) over `images`.

    Raises:
        KfpError: `num_shards` < 1 or `workspace_size` is not a Kubernetes quantity.
    """
    from kfp import dsl

    if num_shards < 1:
        raise KfpError(f"--num-shards must be at least 1, got {num_shards}")

    def spec(step: str, args: Sequence[str]) -> dsl.ContainerSpec:
        return dsl.ContainerSpec(image=images[step].reference, args=list(args))

    @dsl.container_component
    def processing(data_dir: str, source: str, seed: int) -> dsl.ContainerSpec:
        """Raw data to versioned Parquet splits (slipway/processing)."""
        return spec(
            "processing", step_args("processing", data_dir=data_dir, source=source, seed=seed)
        )

    @dsl.container_component
    def training(data_dir: str, tracking_uri: str, model_name: str, seed: int) -> dsl.ContainerSpec:
        """Train, log to MLflow, register a version as challenger (slipway/training)."""
        return spec(
            "training",
            step_args(
                "training",
                data_dir=data_dir,
                tracking_uri=tracking_uri,
                model_name=model_name,
                seed=seed,
            ),
        )

    @dsl.container_component
    def evaluation(
        data_dir: str, tracking_uri: str, model_name: str, min_improvement: float
    ) -> dsl.ContainerSpec:
        """Evaluate the challenger; move champion under the policy (slipway/evaluation)."""
        return spec(
            "evaluation",
            step_args(
                "evaluation",
                data_dir=data_dir,
                tracking_uri=tracking_uri,
                model_name=model_name,
                min_improvement=min_improvement,
            ),
        )

    @dsl.container_component
    def inference(
        data_dir: str,
        tracking_uri: str,
        model_name: str,
        batch_size: int,
        shard_index: int,
        num_shards: int,
    ) -> dsl.ContainerSpec:
        """Batch inference of the test split by champion, one shard (slipway/inference)."""
        args = step_args(
            "inference", data_dir=data_dir, tracking_uri=tracking_uri, model_name=model_name
        )
        sharding = ["--batch-size", batch_size, "--shard-index", shard_index]
        return spec("inference", [*args, *sharding, "--num-shards", num_shards])

    def configure(task: Any, step: str) -> Any:
        # Steps write to the registry and the data dir: a cached result would skip them.
        task.set_caching_options(False)
        task.set_env_variable("SLIPWAY_IMAGE_DIGEST", images[step].digest)
        if git_commit:
            task.set_env_variable("SLIPWAY_GIT_COMMIT", git_commit)
        return task

    try:
        config = dsl.PipelineConfig(workspace=dsl.WorkspaceConfig(size=workspace_size))
    except ValueError as err:
        raise KfpError(f"--workspace-size: {err}") from None

    @dsl.pipeline(name=PIPELINE_NAME, pipeline_config=config)
    def digits(
        data_dir: str = DEFAULT_DATA_DIR,
        tracking_uri: str = "",
        seed: int = 0,
        min_improvement: float = 0.0,
        source: str = "digits",
        model_name: str = DEFAULT_MODEL_NAME,
        inference_batch_size: int = DEFAULT_INFERENCE_BATCH_SIZE,
    ) -> None:
        """Slipway's digits pipeline: processing, training, evaluation, sharded inference.

        `tracking_uri` empty means the embedded SQLite registry under `data_dir`. The
        default `data_dir` is KFP's workspace, which is removed when the run ends: keep
        results by pointing `data_dir` at a mounted volume. Inference shards split the
        rows by batches of `inference_batch_size`.
        """
        processed = configure(processing(data_dir=data_dir, source=source, seed=seed), "processing")
        trained = configure(
            training(
                data_dir=data_dir, tracking_uri=tracking_uri, model_name=model_name, seed=seed
            ),
            "training",
        ).after(processed)
        evaluated = configure(
            evaluation(
                data_dir=data_dir,
                tracking_uri=tracking_uri,
                model_name=model_name,
                min_improvement=min_improvement,
            ),
            "evaluation",
        ).after(trained)
        with dsl.ParallelFor(items=list(range(num_shards))) as shard:
            configure(
                inference(
                    data_dir=data_dir,
                    tracking_uri=tracking_uri,
                    model_name=model_name,
                    batch_size=inference_batch_size,
                    shard_index=shard,
                    num_shards=num_shards,
                ),
                "inference",
            ).after(evaluated)

    return digits


def compile_pipeline(pipeline: Any, output: Path) -> None:
    """Write `pipeline`'s KFP spec (YAML) to `output` atomically.

    Raises:
        KfpError: `output` does not end in .yaml or .yml.
    """
    from kfp import compiler

    if output.suffix not in (".yaml", ".yml"):
        raise KfpError(f"--output {output}: the pipeline spec is YAML; name it *.yaml or *.yml")
    with atomic_path(output, suffix=output.suffix) as tmp:
        compiler.Compiler().compile(pipeline, package_path=str(tmp))


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.make_parser("kfp", __doc__ or "")
    cli.add_flag(
        parser,
        "--output",
        env="SLIPWAY_KFP_OUTPUT",
        required=False,
        type=Path,
        help="Where to write the compiled pipeline (.yaml)",
    )
    cli.add_flag(
        parser,
        "--release-manifest",
        env="SLIPWAY_RELEASE_MANIFEST",
        type=Path,
        help="Take the images from this release manifest (dist/release/release-X.Y.Z.json)",
    )
    cli.add_flag(
        parser,
        "--registry",
        env="SLIPWAY_REGISTRY",
        default=DEFAULT_REGISTRY,
        help="Without a manifest: the registry this build's images were pushed to",
    )
    cli.add_flag(
        parser,
        "--num-shards",
        env="SLIPWAY_NUM_SHARDS",
        default=2,
        type=cli.positive_int,
        help="Batch inference shards (parallel tasks)",
    )
    cli.add_flag(
        parser,
        "--workspace-size",
        env="SLIPWAY_KFP_WORKSPACE_SIZE",
        default="2Gi",
        help="Size of KFP's shared workspace volume on a cluster (Kubernetes quantity)",
    )
    cli.add_flag(
        parser,
        "--log-level",
        env="SLIPWAY_LOG_LEVEL",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="Logging level",
    )
    args = parser.parse_args(argv)
    cli.setup_logging(args.log_level)
    if args.output is None:
        parser.error("--output is required (e.g. --output digits.yaml)")
    output = user_path(args.output)
    if args.release_manifest is not None:
        images, commit = images_from_manifest(user_path(args.release_manifest))
    else:
        images, commit = images_from_build(args.registry), None
    pipeline = build_pipeline(
        images,
        num_shards=args.num_shards,
        workspace_size=args.workspace_size,
        git_commit=commit,
    )
    compile_pipeline(pipeline, output)
    for step in STEP_NAMES:
        print(f"{step:<11} {images[step].reference}")
    print(f"compiled {PIPELINE_NAME} ({args.num_shards} inference shards) to {output}")
    return 0


if __name__ == "__main__":
    cli.run(main)
