"""The evaluation job's workflow: score a version, write the report, move `champion`."""

from __future__ import annotations

import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from slipway import lineage
from slipway.data import open_processed
from slipway.errors import AliasConflictError
from slipway.evaluation import PromotionPolicy, evaluate_model, metrics_dict
from slipway.io import write_json
from slipway.plots import plot_confusion
from slipway.registry import CHAMPION, Registry

REPORT_NAME = "report.json"
CONFUSION_PNG_NAME = "confusion_matrix.png"


def evaluate_and_promote(
    *,
    registry: Registry,
    model_name: str,
    processed: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    policy: PromotionPolicy,
    version: str | None = None,
    alias: str | None = None,
    split: str = "test",
) -> dict[str, Any]:
    """Evaluate a version on a split, write the report, and move `champion` if it wins.

    The current champion (if any, and if different) is re-scored on the same split so
    the comparison is like for like. Writes `<output_dir>/report.json` and
    `<output_dir>/confusion_matrix.png` (the candidate's), logs both to the candidate's
    run under `evaluation/`, and tags the version with its scores.

    Returns:
        The report: `model`, `data`, `candidate` metrics, `champion_before`, `policy`,
        `decision` and `champion` (after the decision, with its metrics under `test`).

    The report and plot are written, and the version tagged, before `champion` moves.
    It moves only if it still points at the version read at the start (see
    `Registry.compare_and_set_alias`); otherwise the report records the conflict.

    Raises:
        ModelNotFoundError: unknown model, version or alias. DataError: no processed data.
        AliasConflictError: another evaluation moved `champion` meanwhile; the message
            names both versions.
    """
    data = open_processed(processed)
    frame = data.read(split)
    candidate = registry.get_version(model_name, version=version, alias=alias)
    cand_model = registry.load_model(candidate.uri)
    cand_metrics = metrics_dict(evaluate_model(cand_model.module, frame))
    champ = registry.find_version(model_name, CHAMPION)
    champ_metrics: dict[str, Any] | None = None
    if champ is not None and champ.version == candidate.version:
        champ_metrics = cand_metrics
    elif champ is not None:
        champ_metrics = metrics_dict(evaluate_model(registry.load_model(champ.uri).module, frame))

    if champ is not None and champ.version == candidate.version:
        decision_dict = {
            "promote": False,
            "reason": f"version {candidate.version} is already the champion",
        }
    else:
        decision_dict = policy.decide(cand_metrics, champ_metrics).to_dict()
    promoted = bool(decision_dict["promote"])
    new_champ_version: str | None
    new_champ_metrics: dict[str, Any] | None
    if promoted:
        new_champ_version, new_champ_metrics = candidate.version, cand_metrics
    elif champ is not None:
        new_champ_version, new_champ_metrics = champ.version, champ_metrics
    else:
        new_champ_version, new_champ_metrics = None, None
    report: dict[str, Any] = {
        "model": {
            "name": model_name,
            "version": candidate.version,
            "uri": candidate.uri,
            "run_id": candidate.run_id,
            "lineage": lineage.of_tags(candidate.tags),
        },
        "data": {"version": data.version, "split": split, "rows": len(frame)},
        "candidate": cand_metrics,
        "champion_before": None
        if champ is None
        else {"version": champ.version, "metrics": champ_metrics},
        "policy": asdict(policy),
        "decision": decision_dict,
        "champion": None
        if new_champ_version is None
        else {
            "name": model_name,
            "version": new_champ_version,
            "uri": f"models:/{model_name}@{CHAMPION}",
            "test": new_champ_metrics,
        },
    }
    # Everything is written before the alias moves: a promoted champion always has its report.
    out = Path(output_dir)
    write_json(out / REPORT_NAME, report)
    plot_confusion(
        np.asarray(cand_metrics["confusion_matrix"]),
        out / CONFUSION_PNG_NAME,
        title=f"{model_name} v{candidate.version} on {split} (accuracy {cand_metrics['accuracy']:.4f})",
    )
    registry.set_version_tags(
        model_name,
        candidate.version,
        {
            f"{split}_accuracy": f"{cand_metrics['accuracy']:.6f}",
            f"{split}_macro_f1": f"{cand_metrics['macro_f1']:.6f}",
            "data_version": data.version,
        },
    )
    if promoted:
        expected = champ.version if champ is not None else None
        try:
            registry.compare_and_set_alias(model_name, CHAMPION, expected, candidate.version)
        except AliasConflictError as exc:
            # The report must not claim a promotion that did not happen.
            report["decision"] = {"promote": False, "reason": f"conflict: {exc}"}
            report["champion"] = None
            write_json(out / REPORT_NAME, report)
            _log_report(registry, candidate.run_id, out)
            raise
    _log_report(registry, candidate.run_id, out)
    return report


def _log_report(registry: Registry, run_id: str | None, out: Path) -> None:
    if not run_id:
        return
    with tempfile.TemporaryDirectory(prefix="slipway-eval-") as tmp:
        for name in (REPORT_NAME, CONFUSION_PNG_NAME):
            Path(tmp, name).write_bytes((out / name).read_bytes())
        registry.log_artifacts(run_id, tmp, "evaluation")
