"""The gate's report: a Markdown table fit for a PR comment and $GITHUB_STEP_SUMMARY."""

from __future__ import annotations

from typing import Any

from conveyor.checks.result import CheckResult

# What the gate table shows per check: dotted paths into CheckResult.metrics, `*` for every key at that level.
HEADLINES = {
    "quality": ("rows", "label_rate", "duplicate_fraction"),
    "drift": ("window", "drifted_share"),
    "evaluate": ("roc_auc", "pr_auc", "f1", "brier", "champion.roc_auc"),
    "fairness": ("features.*.equalized_odds_difference", "features.*.demographic_parity_ratio"),
    "latency": ("single_p99_ms", "batch_rows_per_s", "load_seconds"),
}


def headlines(check: str, metrics: dict[str, Any]) -> list[str]:
    """`name = value` for each headline path found in the metrics."""
    found: list[str] = []

    def walk(node: Any, parts: list[str], trail: list[str]) -> None:
        if not parts:
            shown = f"{node:.4g}" if isinstance(node, float) else str(node)
            found.append(f"{'.'.join(trail)} = {shown}")
            return
        if not isinstance(node, dict):
            return
        keys = sorted(node) if parts[0] == "*" else [parts[0]]
        for key in keys:
            if key in node:
                walk(node[key], parts[1:], [*trail, key])

    for path in HEADLINES.get(check, ()):
        walk(metrics, path.split("."), [])
    return found


def markdown(results: list[CheckResult], passed: bool, version: str | None) -> str:
    """A table fit for a PR comment and $GITHUB_STEP_SUMMARY."""
    verdict = f"passed: registered as version {version} (`candidate`)" if passed else "FAILED: nothing registered"
    lines = [f"### Conveyor gate {verdict}", "", "| check | result | details |", "|---|---|---|"]
    for result in results:
        mark = "✅ pass" if result.passed else "❌ fail"
        details = (
            [f"**{f}**" for f in result.failures]
            + headlines(result.check, result.metrics)
            + [f"⚠️ {w}" for w in result.warnings]
        )
        lines.append(f"| {result.check} | {mark} | {'<br>'.join(d.replace('|', '/') for d in details)} |")
    return "\n".join(lines) + "\n"
