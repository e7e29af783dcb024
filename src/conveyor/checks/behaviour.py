"""behaviour: behavioural tests of the trained model, declared in params.yaml `gates.behaviour` (the model tests
Made-With-ML writes by hand, made policy). Each is judged against its Threshold:

- invariance: for each feature listed as `invariant`, its values trade places between the sampled holdout rows
  (each row takes the next row's value); the mean |change| in P(positive) must stay under `invariance_shift`;
- directional expectations: for each `directional` feature, raising it by `step` (capped at its declared max)
  must not move the score against the declared direction on at least `directional_share` of the rows;
- minimum functionality: each hand-written `case` must get its expected label from the model and its decision
  policy; a case that does not is one sentence with the probability and the threshold.

The rows are the `rows` holdout rows with the smallest row hash: the same rows whatever the file's order.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pandas as pd

from conveyor import bundle, decision
from conveyor.checks import holdout
from conveyor.checks.result import CheckResult
from conveyor.config import BehaviourGate, Judgement, Settings
from conveyor.decision import Decision
from conveyor.errors import ConveyorError
from conveyor.paths import TRAINED_MODEL
from conveyor.serve.reference import to_frame

CHECK = "behaviour"


class Model(Protocol):
    def predict_proba(self, x: pd.DataFrame) -> np.ndarray: ...


def run(settings: Settings) -> CheckResult:
    """Load the trained model and its decision policy, test them on the holdout, write reports/behaviour.json."""
    model = bundle.load(TRAINED_MODEL, settings)
    result = assess(settings, model, decision.read(TRAINED_MODEL, settings), holdout.rows(settings).x)
    result.write()
    return result


def assess(settings: Settings, model: Model, decision: Decision, x: pd.DataFrame) -> CheckResult:
    """Every behavioural test of `model` (with `decision`) on rows of `x`; no files read or written."""
    gate = settings.gates.behaviour
    _check_features(settings, gate)
    rows = sample(x, gate.rows)
    proba = _proba(model, rows)
    judgements: list[Judgement] = []
    metrics: dict[str, Any] = {"rows": len(rows), "invariance": {}, "directional": {}, "cases": {}}
    for name in gate.invariant:
        traded = rows.assign(**{name: np.roll(rows[name].to_numpy(), 1)})
        shift = np.abs(_proba(model, traded) - proba)
        metrics["invariance"][name] = {"mean_shift": float(shift.mean()), "max_shift": float(shift.max())}
        judgements.append(gate.invariance_shift.judge("invariance_shift", shift.mean(), subject=name))
    for rule in gate.directional:
        top = settings.data.features[rule.feature].max  # type: ignore[union-attr]
        raised = rows.assign(**{rule.feature: (rows[rule.feature] + rule.step).clip(upper=top)})
        moved = _proba(model, raised) - proba
        against = moved < 0 if rule.direction == "up" else moved > 0
        share = 1.0 - float(against.mean())
        metrics["directional"][rule.feature] = {
            "direction": rule.direction,
            "step": rule.step,
            "share_not_against": share,
            "share_with": float((moved > 0 if rule.direction == "up" else moved < 0).mean()),
        }
        subject = f"{rule.feature} + {rule.step:g} → score {rule.direction}"
        judgements.append(gate.directional_share.judge("directional_share", share, subject=subject))
    failures = []
    if gate.cases:
        records = [case.record for case in gate.cases]
        frame = to_frame(records, settings.data.features)
        case_proba = _proba(model, frame)
        labels = decision.labels(frame, case_proba)
        for case, label, probability, limit in zip(
            gate.cases, labels, case_proba, decision.thresholds(frame), strict=True
        ):
            expected = int(case.expect == settings.data.positive_label)
            got = settings.data.positive_label if label else f"not {settings.data.positive_label}"
            metrics["cases"][case.name] = {
                "expected": case.expect,
                "probability": float(probability),
                "passed": bool(label == expected),
            }
            if label != expected:
                failures.append(
                    f"case {case.name!r} expects {case.expect} but the model says {got} "
                    f"(P = {probability:.3f}, threshold {limit:.3f})"
                )
        share = float(np.mean([c["passed"] for c in metrics["cases"].values()]))
        judgements.append(gate.cases_passed.judge("cases_passed", share))
    return CheckResult.judged(CHECK, judgements, failures, metrics=metrics, thresholds=gate.model_dump())


def sample(x: pd.DataFrame, rows: int) -> pd.DataFrame:
    """The `rows` rows with the smallest hash of their values: the same rows whatever their order in `x`."""
    keys = pd.util.hash_pandas_object(x, index=False).to_numpy()
    return x.iloc[np.argsort(keys, kind="stable")[:rows]].reset_index(drop=True)


def _proba(model: Model, x: pd.DataFrame) -> np.ndarray:
    return np.asarray(model.predict_proba(x))[:, 1]


def _check_features(settings: Settings, gate: BehaviourGate) -> None:
    """Refuse a policy that names a feature params.yaml does not declare, with one sentence."""
    features = settings.data.features
    for name in gate.invariant:
        if name not in features:
            raise ConveyorError(f"gates.behaviour.invariant names {name!r}, which is not a feature in data.features.")
    for rule in gate.directional:
        if rule.feature not in settings.data.numeric:
            raise ConveyorError(
                f"gates.behaviour.directional names {rule.feature!r}; expected a numeric feature in data.features."
            )
    for case in gate.cases:
        missing = [name for name in features if name not in case.record]
        unknown = [name for name in case.record if name not in features]
        if missing or unknown:
            raise ConveyorError(
                f"gates.behaviour case {case.name!r}: the record lacks {missing} and has unknown {unknown}; "
                "expected exactly the features in data.features."
            )
