"""fairness: fairlearn group metrics per sensitive feature on the holdout, under the model's decision policy.

Disparities (demographic-parity ratio, equalized-odds difference) are gated over the groups with at least
`gates.fairness.min_group_size` holdout rows, `min_group_positives` positive and `min_group_negatives` negative
labels: a true positive rate over 5 positives moves by 0.2 with one row, so such a group is reported with its
metrics and a warning, never dropped, and never decides the gate. The same metrics under the plain global threshold show what the
mitigation (per-group thresholds in decision.json) changed and what it cost in accuracy and F1.
"""

from __future__ import annotations

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
from matplotlib.figure import Figure
from sklearn.metrics import accuracy_score, f1_score

from conveyor.checks import holdout
from conveyor.checks.html import badge, esc, page, svg, table
from conveyor.checks.result import CheckResult
from conveyor.config import FairnessGate, Judgement, Settings, human
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
    report = REPORTS / f"{CHECK}.html"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(render(result, settings.gates.fairness))
    result = replace(result, artifacts=[str(report)])
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


RATES = {
    "selection_rate": "selection rate",
    "true_positive_rate": "true positive rate (TPR)",
    "false_positive_rate": "false positive rate (FPR)",
}


def _rate(value: float | None) -> str:
    return "n/a" if value is None else human(value, 1, percent=True)


def _band(found: dict[str, Any], metric: str, gate: dict[str, Any]) -> tuple[float, float] | None:
    """The range the gated groups' `metric` must share to pass: within the equalized-odds limit of the highest
    gated TPR (or FPR); at least the demographic-parity ratio of the highest gated selection rate."""
    gated = [g[metric] for g in found["groups"].values() if g["gated"] and g[metric] is not None]
    if len(gated) < 2:
        return None
    top = max(gated)
    if metric == "selection_rate":
        return top * gate["demographic_parity_ratio"]["min"], top
    return max(top - gate["equalized_odds_difference"]["max"], 0.0), top


def _chart(name: str, found: dict[str, Any], before: dict[str, Any], gate: dict[str, Any]) -> str:
    """Rates per group (bars: the decision policy; dots: the global threshold alone), the gated band shaded."""
    groups = list(found["groups"])
    figure = Figure(figsize=(10, 0.45 * len(groups) + 1.6), dpi=96, layout="constrained")
    axes = figure.subplots(1, len(RATES), sharey=True)
    for ax, (metric, title) in zip(axes, RATES.items(), strict=True):
        band = _band(found, metric, gate)
        if band is not None:
            ax.axvspan(*band, facecolor="#2da44e", alpha=0.25, zorder=3, linestyle="--", edgecolor="#1a7f37")
        for row, group in enumerate(groups):
            g, old = found["groups"][group], before["groups"][group]
            value = g[metric] if g[metric] is not None else 0.0
            outside = band is not None and g["gated"] and not band[0] - 1e-12 <= value <= band[1] + 1e-12
            colour = "#cf222e" if outside else ("#0969da" if g["gated"] else "#afb8c1")
            ax.barh(row, value, color=colour, hatch=None if g["gated"] else "//", edgecolor="white")
            if old[metric] is not None:
                ax.plot(old[metric], row, "o", color="#24292f", markersize=4)
        ax.set_title(title, fontsize=10)
        ax.set_xlim(0, 1)
        ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(groups)), [str(g) for g in groups])
    axes[0].invert_yaxis()
    figure.suptitle(f"Rates by {name}", fontsize=11)
    return svg(figure)


def _groups_table(found: dict[str, Any], fairness_gate: FairnessGate) -> str:
    rows = [
        [
            esc(group),
            human(g["count"], 0),
            human(g["positives"], 0),
            human(g["negatives"], 0),
            _rate(g["selection_rate"]),
            _rate(g["true_positive_rate"]),
            _rate(g["false_positive_rate"]),
            "yes" if g["gated"] else f'<span class="muted">no: {esc(_short(g, fairness_gate, "holdout"))}</span>',
        ]
        for group, g in found["groups"].items()
    ]
    head = ["group", "holdout rows", "positives", "negatives", "selection rate", "TPR", "FPR", "gated"]
    return table(head, rows, numeric=range(1, 7))


def _verdicts(result: CheckResult) -> str:
    rows = [
        [
            badge(j.passed),
            esc(j.label),
            j.shown(j.value),
            esc(j.rule()),
            esc(j.shown(j.margin, sign=True) + " headroom" if j.passed else j.shown(-j.margin) + " over the limit"),
        ]
        for j in result.judgements
    ]
    if not rows:
        return "<p>No disparity was gated: no sensitive feature has two groups large enough.</p>"
    return table(
        ["verdict", "metric", "value", "passing range", "margin"],
        rows,
        numeric=[2, 4],
        failed=[not j.passed for j in result.judgements],
    )


def _change(metric: str, plain: float, mitigated: float) -> str:
    """The mitigation's effect on a score in [0, 1], in points (hundredths; percentage points for accuracy)."""
    points = (mitigated - plain) * 100
    if abs(points) < 0.005:
        return f"{metric} unchanged"
    moved = "rose" if points > 0 else "fell"
    return f"{metric} {moved} by {human(abs(points), 2)} points"


def _mitigation(result: CheckResult) -> str:
    """The decision policy in words, then one table: each score and disparity before and after, in plain words."""
    mitigation = result.metrics["mitigation"]
    decision = mitigation["decision"]
    policy = f"One global threshold: a probability of at least {human(decision['threshold'], 3)} means positive."
    if decision.get("group_feature") and decision.get("group_thresholds"):
        own = ", ".join(f"{esc(k)} {human(v, 3)}" for k, v in sorted(decision["group_thresholds"].items()))
        policy = (
            f"Per-group thresholds on <b>{esc(decision['group_feature'])}</b>: {own}; every other group keeps the "
            f"global threshold {human(decision['threshold'], 3)}."
        )
    rows = []
    for key, label in (("accuracy", "accuracy"), ("f1", "F1")):
        scores = mitigation[key]
        plain, mitigated = scores["global_threshold"], scores["mitigated"]
        shown = (lambda v: human(v, 2, percent=True)) if key == "accuracy" else (lambda v: human(v, 4))
        rows.append([label, shown(plain), shown(mitigated), esc(_change(label, plain, mitigated))])
    judged = {j.metric: j for j in result.judgements}
    for name in result.metrics["features"]:
        old = mitigation["global_threshold"][name]
        for metric in ("equalized_odds_difference", "demographic_parity_ratio"):
            judgement = judged.get(f"{metric}[{name}]")
            before = old.get(metric)
            if judgement is None or before is None:
                label = f"{result.thresholds[metric]['label']} ({name})"
                rows.append([esc(label), "n/a", "n/a", "not gated: fewer than two gated groups"])
                continue
            after = judgement.value
            moved = (
                "unchanged"
                if abs(after - before) < 5e-4
                else f"{'up' if after > before else 'down'} by {judgement.shown(abs(after - before))}"
            )
            words = f"{moved}; {'meets' if judgement.passed else 'breaks'} the limit {judgement.rule()}"
            rows.append([esc(judgement.label), judgement.shown(before), judgement.shown(after), esc(words)])
    return (
        f"<p>{policy}</p>"
        + table(
            ["measure (holdout)", "global threshold only", "with the decision policy", "effect"], rows, numeric=[1, 2]
        )
        + '<p class="muted">Points are hundredths of the score: accuracy 87.12% to 87.03% is &minus;0.09 points. '
        "The disparities are measured over the gated groups only.</p>"
    )


def _labels_ratio(found: dict[str, Any]) -> str:
    ratio = found.get("label_demographic_parity_ratio")
    if ratio is None:
        return ""
    return (
        f"<p>The true labels alone have a demographic-parity ratio of {human(ratio, 3)} over the "
        f"{found['gated_groups']} gated groups: what a perfect classifier would score.</p>"
    )


def render(result: CheckResult, gate: FairnessGate | None = None) -> str:
    """The HTML report: a verdict per gated metric, the mitigation's effect, then per sensitive feature a chart of
    the rates per group with the gated band and the group table."""
    m = result.metrics
    fairness_gate = gate or FairnessGate.model_validate(result.thresholds)
    messages = "".join(f"<li>{esc(s)}</li>" for s in result.failures)
    notes = "".join(f"<li>{esc(s)}</li>" for s in result.warnings)
    parts = [
        "<section><h2>Verdict per metric</h2>",
        _verdicts(result),
        f'<h3>Failures</h3><ul class="messages">{messages}</ul>' if messages else "",
        f'<h3>Reported, not gated</h3><ul class="messages">{notes}</ul>' if notes else "",
        "</section>",
        "<section><h2>Mitigation: before and after</h2>",
        _mitigation(result),
        "</section>",
    ]
    for name, found in m["features"].items():
        before = m["mitigation"]["global_threshold"][name]
        parts += [
            f"<section><h2>{esc(name)}</h2>",
            _labels_ratio(found),
            "<figure>",
            _chart(name, found, before, result.thresholds),
            "<figcaption>Bars: each group's rate under the decision policy (blue: gated; red: gated and outside "
            "the band; grey hatched: too few rows, positives or negatives to gate). Dots: the rate under the global "
            "threshold alone. Green: the band the gated groups must share (within the equalized-odds limit of the "
            "highest TPR or FPR; at least the demographic-parity ratio of the highest selection rate).</figcaption>",
            "</figure>",
            _groups_table(found, fairness_gate),
            "</section>",
        ]
    verdict = "passed" if result.passed else "FAILED"
    return page(f"Fairness: {verdict}", f"{human(m['holdout_rows'], 0)} holdout rows", "\n".join(parts))
