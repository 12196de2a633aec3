"""What a point is, in words a researcher reads in the MLflow UI: its run name, its knob and
its group, and the tags that put the report's verdict on every child run.

    bon n=64 · pareto(1.5) x0.3
    ppo kl.coef=0.03 · pareto(1.5) x1 [feature]

Imports: config, sweeps.tracking (for tagging).
"""

from __future__ import annotations

import math
from typing import Any

from goodhart.eval.metrics import KNOB_WORDS as KNOB_WORDS  # one spelling: eval/metrics.py
from goodhart.eval.metrics import knob_label as knob_label


def run_name(algo: str, x_name: str, x: float, error: str) -> str:
    """The child run's name: algorithm, knob, error setting."""
    return f"{algo} {knob_label(x_name, x)} · {error}"


def group_label(error: str, algo: str) -> str:
    """The group a verdict is given to: one error setting under one optimizer."""
    return f"{error} / {algo}"


def point_tags(algo: str, x_name: str, x: float, error: str) -> dict[str, str]:
    """Tags (and params) that identify a point's place in the study."""
    return {
        "goodhart.algo": algo,
        "goodhart.error": error,
        "goodhart.group": group_label(error, algo),
        "goodhart.x_name": x_name,
        "goodhart.x": f"{x:g}",
        "goodhart.knob": knob_label(x_name, x),
    }


def distinguishing_overrides(overrides: list[dict[str, Any]]) -> list[str]:
    """Per point, in full, the overrides that tell it apart from the others: every key whose
    value is not the same on all points (a key some points lack counts)."""
    keys: dict[str, None] = {}
    for ov in overrides:
        keys.update(dict.fromkeys(ov))
    missing = object()
    varying = [k for k in keys if len({repr(ov.get(k, missing)) for ov in overrides}) > 1]
    if not varying and len(overrides) == 1:
        varying = list(keys)
    return [" ".join(f"{k}={ov[k]}" for k in varying if k in ov) or "(base)" for ov in overrides]


def _text(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(v)


def tag_children_with_verdicts(tracker, labelled, sweep_verdict: str) -> int:
    """Put each point's verdict (and its reason, when the report gives one) and the sweep's
    verdict on its child run. Rows without an MLflow run id are skipped; returns runs tagged.
    Tracking trouble on one run does not stop the others."""
    n = 0
    if "mlflow_run_id" not in labelled:
        return 0
    for _, r in labelled.iterrows():
        run_id = _text(r.get("mlflow_run_id"))
        if not run_id:
            continue
        tags = {"goodhart.verdict": _text(r.get("verdict")) or "unlabelled", "goodhart.sweep_verdict": sweep_verdict}
        if _text(r.get("est_verdict")):  # the held-out estimate's label (eval/holdout.py), beside gold's
            tags["goodhart.est_verdict"] = _text(r.get("est_verdict"))
        for col in ("verdict_reason", "reason"):
            if _text(r.get(col)):
                tags["goodhart.verdict_reason"] = _text(r.get(col))
                break
        try:
            tracker.set_tags(run_id, tags)
            n += 1
        except Exception:  # a deleted run, another store: the report still stands
            continue
    return n
