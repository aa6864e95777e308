"""Pipelines job: run processing -> training -> evaluation -> inference locally.

With no arguments: the built-in digits data, the embedded registry under the data
directory, seed 0. Prints the champion's test metrics when done. Each step runs as its
own process (the sibling `jobs/<step>/main.py`); the run stops at the first failing
step with its reason, and `--from-step` resumes at a named step.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from slipway import cli

LOG = logging.getLogger("slipway.jobs.pipelines")
STEPS = ("processing", "training", "evaluation", "inference")
# Sibling jobs, found next to this file. Not resolved: under Bazel they are runfiles symlinks.
JOBS_DIR = Path(__file__).parent.parent


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.make_parser("pipelines", __doc__ or "")
    cli.add_common_flags(parser)
    cli.add_flag(
        parser,
        "--input",
        env="SLIPWAY_INPUT",
        default="digits",
        help='Raw data for the processing step: "digits" or a .csv/.parquet path',
    )
    cli.add_flag(
        parser,
        "--seed",
        env="SLIPWAY_SEED",
        default=0,
        type=int,
        help="Seed for splitting and training",
    )
    cli.add_flag(
        parser,
        "--epochs",
        env="SLIPWAY_EPOCHS",
        default=None,
        type=cli.positive_int,
        help="Training epochs (default: the training job's)",
    )
    cli.add_flag(
        parser,
        "--from-step",
        env="SLIPWAY_FROM_STEP",
        default=None,
        choices=STEPS,
        help="Start at this step (earlier steps' outputs must exist)",
    )
    cli.add_flag(
        parser,
        "--min-improvement",
        env="SLIPWAY_POLICY_MIN_IMPROVEMENT",
        default=0.0,
        type=float,
        help="Promotion policy margin for the evaluation step",
    )
    args = parser.parse_args(argv)
    cli.setup_logging(args.log_level)

    from slipway.errors import PipelineError
    from slipway.io import read_json
    from slipway.pipelines import LocalRunner, digits_pipeline, report_dir

    data_dir: Path = args.data_dir
    common = ["--log-level", args.log_level]
    registry_args = ["--tracking-uri", args.tracking_uri] if args.tracking_uri else []
    if args.no_progress:
        common.append("--no-progress")
    source = args.input
    if source != "digits":
        source = str(Path(source).absolute())
    pipeline = digits_pipeline(
        JOBS_DIR,
        data_dir.absolute(),
        source=source,
        seed=args.seed,
        model_name=args.model_name,
        epochs=args.epochs,
        common_args=common,
        registry_args=registry_args,
        policy_args=["--min-improvement", str(args.min_improvement)],
    )
    run = LocalRunner(python=sys.executable).run(pipeline, from_step=args.from_step)
    run.raise_for_failure()
    report_path = report_dir(data_dir) / "report.json"
    if not report_path.exists():
        raise PipelineError(f"no evaluation report at {report_path}; run the evaluation step")
    champion = read_json(report_path)["champion"]
    if champion is None:
        raise PipelineError("no champion: the candidate did not pass the promotion policy")
    test = champion["test"]
    print(f"champion: {champion['name']} version {champion['version']} ({champion['uri']})")
    print(f"test accuracy: {test['accuracy']:.4f}")
    print(f"test macro-F1: {test['macro_f1']:.4f}")
    print(f"test samples:  {test['num_samples']}")
    return 0


if __name__ == "__main__":
    cli.run(main)
