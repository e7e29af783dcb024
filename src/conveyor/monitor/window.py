"""A window of the prediction log: the predictions stamped in [since, until), each joined to its fed-back label.

Feedback is joined by record id from the whole log, whatever its own time: a label arrives after the prediction
it answers, often in a later window. When one id has several labels, the latest-stamped wins. A shadow prediction
shares its primary's id, so champion and challenger are compared on the same requests."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from conveyor import predictionlog
from conveyor.config import Settings
from conveyor.errors import ConveyorError
from conveyor.predictionlog import PRIMARY, SHADOW, Feedback, Prediction

SPAN = re.compile(r"^([1-9][0-9]*)([mhd])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days"}


@dataclass(frozen=True)
class Window:
    """The primary's and the shadow's predictions in the window, one row per record id: the features in
    params.yaml order, then `id`, `time`, `version`, `probability`, `predicted` (0/1, the served label) and
    `actual` (0/1 from feedback, NaN when no label came back)."""

    since: datetime
    until: datetime
    primary: pd.DataFrame
    shadow: pd.DataFrame

    def labelled(self, role: str = PRIMARY) -> pd.DataFrame:
        frame = self.primary if role == PRIMARY else self.shadow
        return frame[frame["actual"].notna()]

    def describe(self) -> str:
        return f"{stamp(self.since)} to {stamp(self.until)}"


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def duration(text: str, option: str = "--window") -> timedelta:
    """`30m`, `24h`, `7d` as a timedelta; one sentence for anything else."""
    match = SPAN.match(text)
    if not match:
        raise ConveyorError(f"{option} = {text!r} is not a duration; expected a whole number and m, h or d, like 24h.")
    return timedelta(**{UNITS[match[2]]: int(match[1])})


def moment(text: str, option: str) -> datetime:
    """An ISO 8601 time (a time without a zone is UTC); one sentence for anything else."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConveyorError(
            f"{option} = {text!r} is not a time; expected ISO 8601, like 2026-01-31T00:00:00Z."
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def bounds(
    window: str | None, since: str | None, until: str | None, now: datetime | None = None
) -> tuple[datetime, datetime]:
    """[since, until): `--since` (else `--until` minus `--window`) to `--until` (else now)."""
    end = moment(until, "--until") if until else (now or datetime.now(UTC))
    if since:
        if window:
            raise ConveyorError("--window and --since both set the window's start; expected one of them.")
        start = moment(since, "--since")
    else:
        start = end - duration(window or "24h")
    if start >= end:
        raise ConveyorError(
            f"the window starts at {stamp(start)}, not before its end {stamp(end)}; expected since < until."
        )
    return start, end


def read(folder: Path, settings: Settings, since: datetime, until: datetime) -> Window:
    """The window of the log under `folder`, joined to its feedback."""
    if not folder.is_dir():
        raise ConveyorError(f"--log = {str(folder)!r} is not a folder; expected the prediction log's folder.")
    predictions: dict[str, dict[str, Prediction]] = {PRIMARY: {}, SHADOW: {}}
    labels: dict[str, Feedback] = {}
    for record in predictionlog.read(folder):
        if isinstance(record, Feedback):
            if record.id not in labels or _time(labels[record.id]) <= _time(record):
                labels[record.id] = record
        elif since <= _time(record) < until:
            predictions[record.role][record.id] = record
    positive = settings.data.positive_label
    return Window(
        since=since,
        until=until,
        primary=_frame(predictions[PRIMARY].values(), labels, settings, positive),
        shadow=_frame(predictions[SHADOW].values(), labels, settings, positive),
    )


def _time(record: Prediction | Feedback) -> datetime:
    return moment(record.time, f"record {record.id!r} field 'time'")


def _frame(
    records: Iterable[Prediction], labels: dict[str, Feedback], settings: Settings, positive: str
) -> pd.DataFrame:
    features = list(settings.data.features)
    rows = [
        {
            **{name: record.features.get(name) for name in features},
            "id": record.id,
            "time": record.time,
            "version": record.version,
            "probability": record.probability,
            "predicted": int(record.label == positive),
            "actual": float(labels[record.id].label == positive) if record.id in labels else np.nan,
        }
        for record in records
    ]
    frame = pd.DataFrame(rows, columns=[*features, "id", "time", "version", "probability", "predicted", "actual"])
    for name in settings.data.numeric:
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    for name in settings.data.categorical:
        frame[name] = frame[name].astype(object).where(frame[name].notna(), np.nan)
    return frame.sort_values("time", kind="stable").reset_index(drop=True)
