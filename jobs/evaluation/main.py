"""Evaluation job: score a registered version on the test split and maybe promote it.

Loads the version (by `--version` or `--alias`), evaluates it on the test split of the
processed data, writes `report.json` and `confusion_matrix.png`, and moves the
`champion` alias to it only if it beats the current champion under the policy flags.
`--lineage` prints the version's lineage (git commit, data version and manifest
checksum, lock file hash, image digest) instead.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from slipway import cli

LOG = logging.getLogger("slipway.jobs.evaluation")


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli.make_parser("evaluation", __doc__ or "")
    cli.add_common_flags(parser)
    cli.add_processed_flag(parser)
    which = parser.add_mutually_exclusive_group()
    cli.add_flag(
        which,
        "--version",
        env="SLIPWAY_MODEL_VERSION",
        default=None,
        help="Model version number to evaluate",
    )
    cli.add_flag(
        which,
        "--alias",
        env="SLIPWAY_MODEL_ALIAS",
        default=None,
        help="Model alias to evaluate (used when --version is unset; default challenger)",
    )
    cli.add_flag(
        parser,
        "--split",
        env="SLIPWAY_EVAL_SPLIT",
        default="test",
        choices=["test", "val"],
        help="Split to evaluate on",
    )
    cli.add_flag(
        parser,
        "--output-dir",
        env="SLIPWAY_REPORT_DIR",
        default=None,
        help="Report directory (default: <data-dir>/reports/evaluation)",
    )
    cli.add_flag(
        parser,
        "--metric",
        env="SLIPWAY_POLICY_METRIC",
        default="accuracy",
        choices=["accuracy", "macro_f1"],
        help="Policy: metric to compare",
    )
    cli.add_flag(
        parser,
        "--min-improvement",
        env="SLIPWAY_POLICY_MIN_IMPROVEMENT",
        default=0.0,
        type=float,
        help="Policy: margin by which the candidate must beat the champion",
    )
    cli.add_flag(
        parser,
        "--min-value",
        env="SLIPWAY_POLICY_MIN_VALUE",
        default=0.0,
        type=float,
        help="Policy: floor the candidate's metric must reach",
    )
    parser.add_argument(
        "--lineage",
        action="store_true",
        help="Print the version's lineage (git commit, data, lock file, image) and exit",
    )
    args = parser.parse_args(argv)
    cli.setup_logging(args.log_level)

    from slipway.evaluation import PromotionPolicy
    from slipway.registry import CHALLENGER, Registry
    from slipway.workflows.evaluate import evaluate_and_promote

    try:
        policy = PromotionPolicy(
            metric=args.metric, min_improvement=args.min_improvement, min_value=args.min_value
        )
    except ValueError as exc:
        parser.error(str(exc))
    alias = None if args.version else (args.alias or CHALLENGER)
    registry = Registry.for_data_dir(args.data_dir, args.tracking_uri)
    if args.lineage:
        from slipway import lineage

        info = registry.get_version(args.model_name, version=args.version, alias=alias)
        print(f"{info.name} version {info.version} (run {info.run_id}):")
        found = lineage.of_tags(info.tags)
        for key, value in found.items():
            print(f"  {key}: {value}")
        if not found:
            print("  no lineage recorded (registered before Slipway recorded lineage)")
        return 0
    report = evaluate_and_promote(
        registry=registry,
        model_name=args.model_name,
        processed=args.processed or args.data_dir / "processed",
        output_dir=args.output_dir or args.data_dir / "reports" / "evaluation",
        policy=policy,
        version=args.version,
        alias=alias,
        split=args.split,
    )
    cand, decision = report["candidate"], report["decision"]
    print(
        f"{args.model_name} version {report['model']['version']} on {args.split}: "
        f"accuracy {cand['accuracy']:.4f}, macro-F1 {cand['macro_f1']:.4f}"
    )
    print(
        ("promoted to champion: " if decision["promote"] else "not promoted: ") + decision["reason"]
    )
    return 0


if __name__ == "__main__":
    cli.run(main)
