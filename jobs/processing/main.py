"""Processing job: raw digits (built-in, CSV or Parquet) to versioned Parquet splits.

Writes `<data-dir>/processed/<version>/{train,val,test}.parquet` and `manifest.json`
(row counts, SHA-256 checksums, schema, split parameters) and points
`<data-dir>/processed/LATEST` at the version. The same input and flags give the same
version, so reruns are no-ops.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from slipway import cli

LOG = logging.getLogger("slipway.jobs.processing")


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.make_parser("processing", __doc__ or "")
    cli.add_common_flags(parser, registry=False)
    cli.add_flag(
        parser,
        "--input",
        env="SLIPWAY_INPUT",
        default="digits",
        help='Raw data: "digits" (scikit-learn\'s copy of the UCI digits) or a .csv/.parquet path',
    )
    cli.add_flag(
        parser,
        "--output-dir",
        env="SLIPWAY_PROCESSED_DIR",
        default=None,
        help="Root of processed versions (default: <data-dir>/processed)",
    )
    cli.add_flag(parser, "--seed", env="SLIPWAY_SEED", default=0, type=int, help="Split seed")
    cli.add_flag(
        parser,
        "--val-fraction",
        env="SLIPWAY_VAL_FRACTION",
        default=0.15,
        type=float,
        help="Share of each class for validation",
    )
    cli.add_flag(
        parser,
        "--test-fraction",
        env="SLIPWAY_TEST_FRACTION",
        default=0.15,
        type=float,
        help="Share of each class for test",
    )
    args = parser.parse_args(argv)
    cli.setup_logging(args.log_level)

    from slipway import data

    out_root = args.output_dir or args.data_dir / "processed"
    try:
        processed = data.process(
            args.input,
            out_root,
            seed=args.seed,
            val_fraction=args.val_fraction,
            test_fraction=args.test_fraction,
        )
    except ValueError as exc:  # bad fractions: a usage error
        parser.error(str(exc))
    rows = {name: processed.manifest["splits"][name]["rows"] for name in data.SPLITS}
    LOG.info(
        "processed %s rows into version %s", processed.manifest["source"]["rows"], processed.version
    )
    print(
        f"processed version {processed.version}: "
        + ", ".join(f"{k} {v}" for k, v in rows.items())
        + f" -> {processed.path}"
    )
    return 0


if __name__ == "__main__":
    cli.run(main)
