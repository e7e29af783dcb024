"""Data drift (Evidently DataDriftPreset): the newest batch against the training reference, per column.

Two rules, both judged: the share of drifted columns (each column's stat test against its threshold), and each
column's score against its own `column` limit, so one strongly drifted column blocks on its own and is named.
With no batch ingested the current window is only the holdout, a slice of the training pool: the figures are
reported as informational and nothing is judged, so a fresh clone never shows a drift pass it did not earn."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
from evidently import ColumnType, DataDefinition, Dataset, Report
from evidently.core.report import Snapshot
from evidently.legacy.calculations.stattests.registry import get_registered_stattest
from evidently.presets import DataDriftPreset

from conveyor.checks.result import CheckResult
from conveyor.config import DriftColumnTest, DriftGate, Judgement, Settings
from conveyor.data.frames import windows
from conveyor.errors import ConveyorError
from conveyor.paths import REPORTS

CHECK = "drift"
HOLDOUT_WINDOW = "holdout"  # what frames.windows calls the current window when no batch has been ingested
SHOWN_COLUMNS = 5  # drifted columns named in the failure sentence; the metrics list every column
VALUE_DRIFT = "evidently:metric_v2:ValueDrift"
DRIFTED_COUNT = "evidently:metric_v2:DriftedColumnsCount"


@dataclass(frozen=True)
class Measured:
    """One comparison of two windows under params.yaml's drift configuration: Evidently's snapshot, the drifted
    count and share, the per-column results, the drifted columns in feature order and their judgements."""

    snapshot: Snapshot
    count: int
    share: float
    columns: dict[str, dict[str, Any]]
    drifted: list[str]
    judgements: list[Judgement]
    tests: dict[str, str | None]


def measure(settings: Settings, reference: pd.DataFrame, current: pd.DataFrame, what: str) -> Measured:
    """The pipeline's drift comparison (`what` names the current window in error sentences); `conveyor monitor`
    calls it on live traffic, so both judge drift with one configuration."""
    features = list(settings.data.features)
    _check_window(reference, "reference", features)
    _check_window(current, f"current ({what})", features)
    gate = settings.gates.drift
    tests = {
        "numeric": _stat_test(gate.numeric, ColumnType.Numerical, "numeric"),
        "categorical": _stat_test(gate.categorical, ColumnType.Categorical, "categorical"),
    }
    snapshot = _compare(settings, reference, current, tests)
    count, share, columns = _read(snapshot.dict(), settings, tests)
    drifted = [name for name in features if columns[name]["drifted"]]
    judgements = [_named(gate.drifted_share.judge("drifted_share", share), drifted), *_by_column(gate, columns)]
    return Measured(snapshot, count, share, columns, drifted, judgements, tests)


def thresholds(settings: Settings, tests: dict[str, str | None]) -> dict[str, Any]:
    """The drift settings as a CheckResult's `thresholds` show them."""
    gate = settings.gates.drift
    return {
        "drifted_share": gate.drifted_share.model_dump(),
        "policy": gate.policy,
        **{f"{kind}_{key}": value for kind in tests for key, value in getattr(gate, kind).model_dump().items()},
    }


def run(settings: Settings) -> CheckResult:
    """Compare the windows, write reports/drift.html and reports/drift.json, gate on the share and each column."""
    reference, current, window = windows(settings)
    found = measure(settings, reference, current, window)
    html = REPORTS / f"{CHECK}.html"
    html.parent.mkdir(parents=True, exist_ok=True)
    found.snapshot.save_html(str(html))

    gate = settings.gates.drift
    judgements = found.judgements
    breaches = [j.failure for j in judgements if j.failure]
    blocking = gate.policy == "block"
    fresh = window != HOLDOUT_WINDOW
    if not fresh:  # nothing new arrived: the holdout is a slice of the same pool, so no verdict on drift
        breaches, judgements = [], []
    result = CheckResult(
        check=CHECK,
        passed=not (breaches and blocking),
        metrics={
            "judged": fresh,
            "window": window,
            "reference_rows": len(reference),
            "current_rows": len(current),
            "drifted_share": found.share,
            "drifted_count": found.count,
            "columns_tested": len(settings.data.features),
            "columns": found.columns,
        },
        thresholds=thresholds(settings, found.tests),
        failures=breaches if blocking else [],
        warnings=([] if blocking else breaches) + ([] if fresh else [_informational(found.share, found.drifted)]),
        artifacts=[str(html)],
        judgements=judgements,
    )
    result.write()
    return result


def _by_column(gate: DriftGate, columns: dict[str, dict[str, Any]]) -> list[Judgement]:
    """Each column judged against its kind's `column` limit, when one is set; a row for each drifted column and
    each column that breaks its limit, the column named in the subject: `drift score (age) = 1.39 > 0.3`."""
    judged = []
    for name, found in columns.items():
        limit = getattr(gate, found["type"]).column
        if limit is None:
            continue
        judgement = limit.judge("column_score", found["score"], subject=name)
        if found["drifted"] or not judgement.passed:
            judged.append(judgement)
    return judged


def _informational(share: float, drifted: list[str]) -> str:
    named = f": {', '.join(drifted)}" if drifted else ""
    return (
        f"no new batch: holdout vs training, informational, not a drift verdict ({len(drifted)} column(s) over "
        f"their stat test's threshold{named}; share {share:.2f}); `conveyor data ingest` brings a batch to judge."
    )


def _check_window(frame: pd.DataFrame, what: str, features: list[str]) -> None:
    """Refuse windows Evidently cannot compare, with one sentence instead of its traceback."""
    if frame.empty:
        raise ConveyorError(f"the {what} window has no rows; expected at least one row to measure drift on.")
    for name in features:
        if name not in frame.columns:
            raise ConveyorError(f"the {what} window lacks column {name!r}, a feature in params.yaml.")
        if frame[name].isna().all():
            raise ConveyorError(
                f"column {name!r} is empty in the {what} window; expected some values to measure drift on."
            )


def _compare(
    settings: Settings, reference: pd.DataFrame, current: pd.DataFrame, tests: dict[str, str | None]
) -> Snapshot:
    """Evidently's DataDriftPreset over the configured features, typed from params.yaml."""
    gate = settings.gates.drift
    features = list(settings.data.features)
    preset = DataDriftPreset(
        columns=features,
        drift_share=gate.drifted_share.max,
        num_method=tests["numeric"],
        num_threshold=gate.numeric.threshold,
        cat_method=tests["categorical"],
        cat_threshold=gate.categorical.threshold,
    )
    definition = DataDefinition(numerical_columns=settings.data.numeric, categorical_columns=settings.data.categorical)
    return Report([preset], include_tests=True).run(
        Dataset.from_pandas(current[features], data_definition=definition),
        Dataset.from_pandas(reference[features], data_definition=definition),
    )


def _stat_test(spec: DriftColumnTest, kind: ColumnType, field: str) -> str | None:
    """The configured test's name, checked against Evidently's registry (None: Evidently chooses)."""
    if spec.test is None:
        return None
    try:
        get_registered_stattest(spec.test, kind)
    except ValueError:
        raise ConveyorError(
            f"params.yaml: gates.drift.{field}.test = {spec.test!r} is not an Evidently stat test for "
            f"{field} columns; expected a registered name such as wasserstein, ks, psi or jensenshannon."
        ) from None
    return spec.test


def _read(
    snapshot: dict[str, Any], settings: Settings, tests: dict[str, str | None]
) -> tuple[int, float, dict[str, dict[str, Any]]]:
    """(drifted count, drifted share, per-column results) from a snapshot's dict."""
    kinds = {
        name: ("categorical" if name in settings.data.categorical else "numeric") for name in settings.data.features
    }
    drifted = {
        t["metric_config"]["metric_id"]: t["status"] == "FAIL"
        for t in snapshot["tests"]
        if t["metric_config"]["params"]["type"] == VALUE_DRIFT
    }
    columns: dict[str, dict[str, Any]] = {}
    count, share = 0, 0.0
    for metric in snapshot["metrics"]:
        config = metric["config"]
        if config["type"] == DRIFTED_COUNT:
            count, share = int(metric["value"]["count"]), float(metric["value"]["share"])
        elif config["type"] == VALUE_DRIFT:
            name = config["column"]
            columns[name] = {
                "type": kinds[name],
                "test": _display_name(tests[kinds[name]], kinds[name]) or config["method"],
                "score": float(metric["value"]),
                "threshold": float(config["threshold"]),
                "drifted": drifted[metric["id"]],
            }
    return count, share, columns


def _display_name(test: str | None, kind: str) -> str | None:
    column_type = ColumnType.Categorical if kind == "categorical" else ColumnType.Numerical
    return get_registered_stattest(test, column_type).display_name if test else None


def _named(judgement: Judgement, drifted: list[str]) -> Judgement:
    """A breach's sentence names the drifted columns: `drifted columns share = 0.46 > 0.3 (age, hours_per_week, ...)`."""
    if judgement.failure is None:
        return judgement
    shown = ", ".join(drifted[:SHOWN_COLUMNS]) + (", ..." if len(drifted) > SHOWN_COLUMNS else "")
    return replace(judgement, failure=f"{judgement.failure} ({shown})")
