"""fairness: fairlearn group metrics per sensitive feature on the holdout, under the model's decision policy.

Disparities (demographic-parity ratio, equalized-odds difference) are gated over the groups with at least
`gates.fairness.min_group_size` holdout rows, `min_group_positives` positive and `min_group_negatives` negative
labels: a true positive rate over 5 positives moves by 0.2 with one row, so such a group is reported with its
metrics and a warning, never dropped, and never decides the gate. The same metrics under the plain global threshold show what the
mitigation (per-group thresholds in decision.json) changed and what it cost in accuracy and F1.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import asdict, replace
from typing import Any

import numpy as np
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    count,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score, f1_score

from conveyor.checks import holdout
from conveyor.checks.result import CheckResult
from conveyor.config import FairnessGate, Judgement, Settings
from conveyor.decision import Decision
from conveyor.paths import REPORTS

CHECK = "fairness"
MISSING = "(missing)"
GROUP_METRICS = {
    "count": count,
    "positives": lambda y_true, y_pred: int(np.sum(y_true)),
    "selection_rate": selection_rate,
    "true_positive_rate": true_positive_rate,
    "false_positive_rate": false_positive_rate,
}
DISPARITY_METRICS = {
    "selection_rate": selection_rate,
    "true_positive_rate": true_positive_rate,
    "false_positive_rate": false_positive_rate,
    "base_rate": lambda y_true, y_pred: float(np.mean(y_true)),
}


def run(settings: Settings) -> CheckResult:
    """Score the holdout with the trained model and its decision; write reports/fairness.{json,html}."""
    scored = holdout.score(settings)
    result = assess(settings, scored.x, scored.y, scored.proba, scored.decision)
    page = REPORTS / f"{CHECK}.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(render(result))
    result = replace(result, artifacts=[str(page)])
    result.write()
    return result


def assess(settings: Settings, x: pd.DataFrame, y: np.ndarray, proba: np.ndarray, decision: Decision) -> CheckResult:
    """The check on given holdout rows, labels from probabilities by `decision` (no files read or written)."""
    gate = settings.gates.fairness
    labels = decision.labels(x, proba)
    plain = Decision(threshold=decision.threshold).labels(x, proba)
    same = np.array_equal(labels, plain)  # no per-group threshold changed a label: "before" is "after"
    features, before, judgements, warnings = {}, {}, [], []
    for name in settings.data.sensitive_features:
        groups = x[name].astype(object).fillna(MISSING).rename(name).reset_index(drop=True)
        features[name] = measure(y, labels, groups, gate)
        before[name] = features[name] if same else measure(y, plain, groups, gate)
        judged, notes = judge(name, features[name], gate)
        judgements += judged
        warnings += notes
    metrics = {
        "holdout_rows": len(y),
        "features": features,
        "mitigation": {
            "decision": asdict(decision),
            "accuracy": _compare(accuracy_score(y, plain), accuracy_score(y, labels)),
            "f1": _compare(f1_score(y, plain, zero_division=0), f1_score(y, labels, zero_division=0)),
            "global_threshold": before,
        },
    }
    return CheckResult.judged(CHECK, judgements, metrics=metrics, thresholds=gate.model_dump(), warnings=warnings)


def measure(y: np.ndarray, labels: np.ndarray, groups: pd.Series, gate: FairnessGate) -> dict[str, Any]:
    """fairlearn MetricFrame by group, and the disparities over the groups with enough rows, positives and
    negatives to gate."""
    frame = MetricFrame(metrics=GROUP_METRICS, y_true=y, y_pred=labels, sensitive_features=groups)
    table = frame.by_group
    table["gated"] = (
        (table["count"] >= gate.min_group_size)
        & (table["positives"] >= gate.min_group_positives)
        & (table["count"] - table["positives"] >= gate.min_group_negatives)
    )
    rows = groups.isin(table.index[table["gated"]]).to_numpy()
    summary: dict[str, Any] = {"gated_groups": int(table["gated"].sum())}
    if summary["gated_groups"] >= 2:
        gated = MetricFrame(
            metrics=DISPARITY_METRICS, y_true=y[rows], y_pred=labels[rows], sensitive_features=groups[rows]
        )
        difference, ratio = gated.difference(), gated.ratio()  # between groups: max - min, min / max
        summary |= {  # as fairlearn's equalized_odds_difference and demographic_parity_ratio define them
            "equalized_odds_difference": _number(
                max(difference["true_positive_rate"], difference["false_positive_rate"])
            ),
            "demographic_parity_ratio": _number(ratio["selection_rate"]),
            "label_demographic_parity_ratio": _number(ratio["base_rate"]),
        }
    summary["groups"] = {
        str(group): {
            "count": int(row["count"]),
            "positives": int(row["positives"]),
            "negatives": int(row["count"] - row["positives"]),
            "selection_rate": _number(row["selection_rate"]),
            "true_positive_rate": _number(row["true_positive_rate"]),
            "false_positive_rate": _number(row["false_positive_rate"]),
            "gated": bool(row["gated"]),
        }
        for group, row in table.iterrows()
    }
    return summary


def judge(
    name: str, found: dict[str, Any], gate: FairnessGate, rows: str = "holdout"
) -> tuple[list[Judgement], list[str]]:
    """The feature's disparities (`measure`) against their thresholds, and notes on what is not judged: a
    disparity that is undefined (under two gated groups, or no positive prediction) and each group too small to
    gate. `rows` names the rows measured in the notes (holdout, labelled live)."""
    judgements = [
        threshold.judge(metric, found[metric], subject=name)
        for metric, threshold in gate.thresholds().items()
        if found.get(metric) is not None
    ]
    return judgements, _notes(name, found, gate, rows)


def _short(group: dict[str, Any], gate: FairnessGate, rows: str) -> str:
    """What a group lacks to be gated: `442 holdout rows but 5 positives, below gates.fairness.min_group_positives 30`."""
    if group["count"] < gate.min_group_size:
        return f"{group['count']} {rows} rows, below gates.fairness.min_group_size {gate.min_group_size}"
    if group["positives"] < gate.min_group_positives:
        return (
            f"{group['count']} {rows} rows but {group['positives']} positives, below "
            f"gates.fairness.min_group_positives {gate.min_group_positives}"
        )
    return (
        f"{group['count']} {rows} rows but {group['negatives']} negatives, below "
        f"gates.fairness.min_group_negatives {gate.min_group_negatives}"
    )


def _notes(name: str, found: dict[str, Any], gate: FairnessGate, rows: str) -> list[str]:
    notes = [
        f"{name} group {group!r} has {_short(g, gate, rows)}: its metrics are reported, not gated."
        for group, g in found["groups"].items()
        if not g["gated"]
    ]
    if found["gated_groups"] < 2:
        notes.append(
            f"{name} has {found['gated_groups']} group(s) with enough {rows} rows, positives and negatives to "
            "gate; a disparity needs two, so none is gated."
        )
    elif found.get("demographic_parity_ratio") is None:
        notes.append(f"demographic_parity_ratio[{name}] is undefined: no gated group has a positive prediction.")
    return notes


def _compare(plain: float, mitigated: float) -> dict[str, float]:
    return {"global_threshold": float(plain), "mitigated": float(mitigated), "cost": float(plain - mitigated)}


def _number(value: float) -> float | None:
    """A JSON-safe float: NaN (an undefined rate or ratio) becomes null."""
    value = float(value)
    return None if math.isnan(value) else value


def _table(found: dict[str, Any]) -> str:
    frame = pd.DataFrame.from_dict(found["groups"], orient="index").rename_axis("group")
    return frame.to_html(float_format=lambda v: f"{v:.3f}", na_rep="n/a", border=0)


def _summary(found: dict[str, Any]) -> str:
    keys = ("equalized_odds_difference", "demographic_parity_ratio", "label_demographic_parity_ratio")
    shown = ", ".join(f"{k} = {found[k]:.3f}" if found.get(k) is not None else f"{k}: n/a" for k in keys)
    return f"<p>{html.escape(shown)} (over {found['gated_groups']} gated groups)</p>"


def render(result: CheckResult) -> str:
    """The HTML report: verdict, failures and warnings, mitigation cost, and per-group tables before and after."""
    m = result.metrics
    mitigation = m["mitigation"]
    items = "".join(f"<li>{html.escape(s)}</li>" for s in result.failures + result.warnings)
    cost = pd.DataFrame({k: mitigation[k] for k in ("accuracy", "f1")}).T
    parts = [
        f"<h1>Fairness: {'passed' if result.passed else 'FAILED'}</h1>",
        f"<p>{m['holdout_rows']} holdout rows. Gates: {html.escape(json.dumps(result.thresholds))}</p>",
        f"<ul>{items}</ul>",
        f"<h2>Decision policy</h2><pre>{html.escape(json.dumps(mitigation['decision'], indent=2))}</pre>",
        "<h2>Mitigation cost (holdout)</h2>",
        cost.to_html(float_format=lambda v: f"{v:.4f}", border=0),
    ]
    for name, found in m["features"].items():
        parts += [
            f"<h2>{html.escape(name)}</h2><h3>With the decision policy</h3>",
            _summary(found),
            _table(found),
            "<h3>With the global threshold only</h3>",
            _summary(mitigation["global_threshold"][name]),
            _table(mitigation["global_threshold"][name]),
        ]
    style = "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:2px 10px}"
    body = "\n".join(parts)
    return f"<!doctype html>\n<html><head><meta charset='utf-8'><title>Fairness</title><style>{style}</style></head>\n<body>{body}</body></html>\n"
