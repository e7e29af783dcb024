"""reports/monitor.html: the window's verdict as one self-contained page (inline style, no script, no URL)."""

from __future__ import annotations

import html
from typing import Any

import pandas as pd

from conveyor.checks.result import CheckResult

STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;margin:0.5em 0}"
    "td,th{padding:2px 10px;text-align:left}tr:nth-child(even){background:#f4f4f4}.fail{color:#b00}.pass{color:#070}"
)


def _table(rows: dict[str, dict[str, Any]], index: str) -> str:
    if not rows:
        return "<p>none</p>"
    frame = pd.DataFrame.from_dict(rows, orient="index").rename_axis(index)
    return frame.to_html(float_format=lambda v: f"{v:.4f}", na_rep="n/a", border=0)


def _not_judged(found: dict[str, Any]) -> str:
    return f"<p>Not judged: {html.escape(found.get('reason', ''))}.</p>"


def _versions(versions: dict[str, list[str]]) -> str:
    return "; ".join(f"{role} {', '.join(found)}" for role, found in versions.items() if found) or "none"


def _retrain(retrain: dict[str, Any]) -> str:
    if not retrain["due"]:
        return "not due"
    if retrain.get("error"):
        return f"due, refused: {retrain['error']}"
    return "due, printed (dry run)" if retrain["dry_run"] else "sent (conveyor-retrain)"


def render(result: CheckResult) -> str:
    m = result.metrics
    verdict = "not judged" if not m["judged"] else ("passed" if result.passed else "FAILED")
    css = "pass" if result.passed else "fail"
    window = m["window"]
    parts = [
        f"<h1>Monitor: <span class='{css}'>{verdict}</span></h1>",
        f"<p>Window {html.escape(window['since'])} to {html.escape(window['until'])}. Records: "
        f"{m['records']['primary']} primary ({m['labelled']['primary']} labelled), {m['records']['shadow']} shadow "
        f"({m['labelled']['shadow']} labelled). Model versions: {html.escape(_versions(m['versions']))}.</p>",
        f"<p>Failed windows in a row: {m['consecutive_failed_windows']}. Retrain dispatch: "
        f"{html.escape(_retrain(m['retrain']))}.</p>",
    ]
    if result.failures:
        parts.append(
            "<h2>Failures</h2><ul>"
            + "".join(f"<li class='fail'>{html.escape(f)}</li>" for f in result.failures)
            + "</ul>"
        )
    if result.warnings:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(w)}</li>" for w in result.warnings) + "</ul>")
    parts.append("<h2>Drift (the pipeline's drift check on live features)</h2>")
    found = m["drift"]
    if found["judged"]:
        parts.append(
            f"<p>Drifted share {found['drifted_share']:.3f} ({found['drifted_count']} column(s)) against "
            f"{found['reference_rows']} training rows.</p>" + _table(found["columns"], "feature")
        )
    else:
        parts.append(_not_judged(found))
    parts.append("<h2>Prediction-score shift</h2>")
    found = m["score_shift"]
    if found["judged"]:
        parts.append(
            f"<p>PSI {found['psi']:.4f}: live mean score {found['live_mean']:.4f} against "
            f"{found['reference_mean']:.4f} on {found['reference_rows']} holdout rows "
            f"(model version {html.escape(str(found['reference_version']))}).</p>"
        )
    else:
        parts.append(_not_judged(found))
    parts.append("<h2>Live performance (labelled rows)</h2>")
    performance = m["performance"]
    if performance["primary"].get("judged"):
        parts.append(
            _table({role: {k: v for k, v in s.items() if k != "judged"} for role, s in performance.items()}, "role")
        )
    else:
        parts.append(_not_judged(performance["primary"]))
    challenger = m.get("challenger")
    if challenger:
        parts.append("<h2>Champion vs challenger</h2>")
        if challenger.get("judged"):
            parts.append(
                f"<p>ROC AUC shadow minus primary on {challenger['pairs']} labelled requests: "
                f"{challenger['roc_auc_difference']:+.4f}, {challenger['confidence']:.0%} paired-bootstrap interval "
                f"[{challenger['low']:+.4f}, {challenger['high']:+.4f}] ({challenger['resamples']} resamples, "
                f"seed {challenger['seed']}).</p>"
            )
        else:
            parts.append(_not_judged(challenger))
    parts.append("<h2>Fairness (labelled rows)</h2>")
    found = m["fairness"]
    if found["judged"]:
        for name, measured in found["features"].items():
            summary = {k: measured.get(k) for k in ("equalized_odds_difference", "demographic_parity_ratio")}
            parts.append(f"<h3>{html.escape(name)}</h3><p>{html.escape(str(summary))}</p>")
            parts.append(_table(measured["groups"], "group"))
    else:
        parts.append(_not_judged(found))
    body = "\n".join(parts)
    return (
        "<!doctype html>\n<html><head><meta charset='utf-8'><title>Monitor</title>"
        f"<style>{STYLE}</style></head>\n<body>{body}</body></html>\n"
    )
