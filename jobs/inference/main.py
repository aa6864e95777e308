"""Inference job: batch predictions by model alias over CSV/Parquet files.

Each input file gets `<output-dir>/<stem>.predictions[.shard-i-of-n].parquet` with the
input's ID column, the predicted digit and its probability. Memory stays bounded by
`--batch-size`. Run N workers with `--shard-index 0..N-1 --num-shards N` to split the
rows between them. An `--input` that is a processed-data directory means its `--split`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from slipway import cli

LOG = logging.getLogger("slipway.jobs.inference")


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.make_parser("inference", __doc__ or "")
    cli.add_common_flags(parser)
    cli.add_flag(
        parser,
        "--input",
        env="SLIPWAY_INFERENCE_INPUT",
        default=None,
        nargs="+",
        help="Input files or directories (env: space-separated is not supported; one path)",
    )
    cli.add_flag(
        parser,
        "--split",
        env="SLIPWAY_INFERENCE_SPLIT",
        default="test",
        choices=["train", "val", "test"],
        help="Split used when an input is processed data",
    )
    cli.add_flag(
        parser,
        "--output-dir",
        env="SLIPWAY_PREDICTIONS_DIR",
        default=None,
        help="Output directory (default: <data-dir>/predictions)",
    )
    cli.add_flag(
        parser,
        "--alias",
        env="SLIPWAY_MODEL_ALIAS",
        default="champion",
        help="Model alias to predict with",
    )
    cli.add_flag(
        parser,
        "--id-column",
        env="SLIPWAY_ID_COLUMN",
        default="id",
        help="Input column copied next to each prediction",
    )
    cli.add_flag(
        parser,
        "--batch-size",
        env="SLIPWAY_INFERENCE_BATCH_SIZE",
        default=4096,
        type=cli.positive_int,
        help="Rows per batch (also the sharding unit)",
    )
    cli.add_flag(
        parser,
        "--shard-index",
        env="SLIPWAY_SHARD_INDEX",
        default=0,
        type=cli.non_negative_int,
        help="This worker's shard, 0-based",
    )
    cli.add_flag(
        parser,
        "--num-shards",
        env="SLIPWAY_NUM_SHARDS",
        default=1,
        type=cli.positive_int,
        help="Number of workers sharing the input",
    )
    cli.add_flag(
        parser,
        "--output-format",
        env="SLIPWAY_OUTPUT_FORMAT",
        default="parquet",
        choices=["parquet", "csv"],
        help="Output file format",
    )
    args = parser.parse_args(argv)
    if not args.input:
        parser.error("--input is required (or set SLIPWAY_INFERENCE_INPUT)")
    if isinstance(args.input, str):
        args.input = [args.input]
    if args.shard_index >= args.num_shards:
        parser.error(f"--shard-index must be below --num-shards ({args.num_shards})")
    cli.setup_logging(args.log_level)

    from slipway.data import open_processed
    from slipway.errors import DataError
    from slipway.registry import Registry
    from slipway.workflows.predict import predict_with_model

    inputs: list[str | Path] = []
    for raw in args.input:
        p = Path(raw)
        if p.is_dir() and ((p / "manifest.json").exists() or (p / "LATEST").exists()):
            processed = open_processed(p)
            inputs.append(processed.path / processed.manifest["splits"][args.split]["file"])
        else:
            inputs.append(p)
    for p in inputs:
        if not Path(p).exists():
            raise DataError(f"input file not found: {p}")
    registry = Registry.for_data_dir(args.data_dir, args.tracking_uri)
    info, summary = predict_with_model(
        registry=registry,
        model_uri=f"models:/{args.model_name}@{args.alias}",
        inputs=inputs,
        output_dir=args.output_dir or args.data_dir / "predictions",
        id_column=args.id_column,
        batch_size=args.batch_size,
        shard_index=args.shard_index,
        num_shards=args.num_shards,
        output_format=args.output_format,
        progress=not args.no_progress,
    )
    print(
        f"predicted {summary.rows} rows with {info.name} version {info.version} "
        f"(@{args.alias}, shard {args.shard_index}/{args.num_shards}) in {summary.seconds:.2f}s "
        f"-> {', '.join(str(p) for p in summary.outputs)}"
    )
    return 0


if __name__ == "__main__":
    cli.run(main)
