"""Training job: train on processed data, log to MLflow, register the new challenger.

Logs parameters, per-epoch metrics and the model to an MLflow run, registers a new
version of the model and points the `challenger` alias at it. `--resume` continues
from the checkpoint (and MLflow run) of a killed run. Under torchrun, trains with
DistributedDataParallel (gloo, CPU); rank 0 logs, checkpoints and registers:

    python -m torch.distributed.run --standalone --nproc_per_node=2 jobs/training/main.py
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from slipway import cli

LOG = logging.getLogger("slipway.jobs.training")


def _hidden(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"want comma-separated integers, got {text!r}") from exc
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"want positive sizes, got {text!r}")
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.make_parser("training", __doc__ or "")
    cli.add_common_flags(parser)
    cli.add_processed_flag(parser)
    cli.add_flag(
        parser,
        "--experiment",
        env="SLIPWAY_EXPERIMENT",
        default="slipway-digits",
        help="MLflow experiment",
    )
    cli.add_flag(
        parser,
        "--architecture",
        env="SLIPWAY_ARCHITECTURE",
        default="mlp",
        choices=["mlp", "cnn"],
        help="Model architecture",
    )
    cli.add_flag(
        parser,
        "--hidden",
        env="SLIPWAY_HIDDEN",
        default="512,256",
        type=_hidden,
        help="Hidden layer widths (mlp) or channels (cnn), comma-separated",
    )
    cli.add_flag(
        parser, "--dropout", env="SLIPWAY_DROPOUT", default=0.2, type=float, help="Dropout"
    )
    cli.add_flag(
        parser,
        "--epochs",
        env="SLIPWAY_EPOCHS",
        default=60,
        type=cli.positive_int,
        help="Total epochs",
    )
    cli.add_flag(
        parser,
        "--batch-size",
        env="SLIPWAY_BATCH_SIZE",
        default=32,
        type=cli.positive_int,
        help="Rows per step and process",
    )
    cli.add_flag(
        parser,
        "--learning-rate",
        env="SLIPWAY_LEARNING_RATE",
        default=1e-3,
        type=float,
        help="Adam learning rate",
    )
    cli.add_flag(
        parser,
        "--weight-decay",
        env="SLIPWAY_WEIGHT_DECAY",
        default=1e-4,
        type=float,
        help="Adam weight decay",
    )
    cli.add_flag(parser, "--seed", env="SLIPWAY_SEED", default=0, type=int, help="Training seed")
    cli.add_flag(
        parser,
        "--checkpoint-dir",
        env="SLIPWAY_CHECKPOINT_DIR",
        default=None,
        help="Checkpoint directory (default: <data-dir>/checkpoints/<model-name>)",
    )
    cli.add_flag(
        parser,
        "--checkpoint-seconds",
        env="SLIPWAY_CHECKPOINT_SECONDS",
        default=30.0,
        type=float,
        help="Minimum seconds between checkpoints (0: every epoch)",
    )
    cli.add_flag(
        parser,
        "--collective-timeout",
        env="SLIPWAY_COLLECTIVE_TIMEOUT",
        default=300.0,
        type=float,
        help="Seconds a rank waits for the others in a collective before failing (torchrun)",
    )
    cli.add_flag(
        parser,
        "--resume",
        env="SLIPWAY_RESUME",
        action="store_true",
        help="Continue from the last checkpoint if there is one",
    )
    args = parser.parse_args(argv)
    if args.collective_timeout <= 0:
        parser.error(f"--collective-timeout must be > 0, got {args.collective_timeout}")

    from slipway import training
    from slipway.models import ModelConfig

    ctx = training.DistContext.from_env(timeout_seconds=args.collective_timeout)
    cli.setup_logging(args.log_level if ctx.is_main else "WARNING")
    try:
        model_config = ModelConfig(
            architecture=args.architecture, hidden=args.hidden, dropout=args.dropout
        )
        train_config = training.TrainConfig(
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            weight_decay=args.weight_decay,
            seed=args.seed,
            checkpoint_seconds=args.checkpoint_seconds,
        )
    except ValueError as exc:
        parser.error(str(exc))

    from slipway.registry import Registry
    from slipway.workflows.train import train_and_register

    training.init_distributed(ctx)
    try:
        registry = Registry.for_data_dir(args.data_dir, args.tracking_uri) if ctx.is_main else None
        checkpoint_dir = args.checkpoint_dir or args.data_dir / "checkpoints" / args.model_name
        outcome = train_and_register(
            registry=registry,
            processed=args.processed or args.data_dir / "processed",
            model_name=args.model_name,
            model_config=model_config,
            train_config=train_config,
            checkpoint_path=f"{checkpoint_dir}/last.pt",
            resume=args.resume,
            experiment=args.experiment,
            ctx=ctx,
            progress=not args.no_progress,
        )
    finally:
        training.shutdown_distributed()
    if ctx.distributed:
        # Every rank, on stdout (the other ranks log warnings only): equal digests
        # show that the ranks ended with identical weights.
        print(
            f"rank {ctx.rank} of {ctx.world_size}: weights sha256 {outcome.weights_sha256}",
            flush=True,
        )
    if ctx.is_main and outcome.version is not None:
        resumed = (
            ""
            if outcome.resumed_from_epoch is None
            else f" (resumed from epoch {outcome.resumed_from_epoch})"
        )
        print(
            f"registered {outcome.version.name} version {outcome.version.version} as challenger"
            f"{resumed}: val accuracy {outcome.val_metrics['accuracy']:.4f},"
            f" macro-F1 {outcome.val_metrics['macro_f1']:.4f}, run {outcome.run_id}"
        )
    return 0


if __name__ == "__main__":
    cli.run(main)
