"""Window selection and the feedback join on a real log folder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from conveyor import predictionlog
from conveyor.config import Settings
from conveyor.errors import ConveyorError
from conveyor.monitor import window
from conveyor.predictionlog import Feedback
from tests.unit.monitor import logs

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


def test_bounds_from_a_window_since_or_until() -> None:
    assert window.bounds("2h", None, "2026-01-10T12:00:00Z") == (T0 - timedelta(hours=2), T0)
    assert window.bounds(None, "2026-01-10T10:00:00", "2026-01-10T12:00:00Z") == (T0 - timedelta(hours=2), T0)
    assert window.bounds(None, None, None, now=T0) == (T0 - timedelta(hours=24), T0)  # 24h by default


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("2 hours", None, None), "--window = '2 hours' is not a duration"),
        ((None, "yesterday", None), "--since = 'yesterday' is not a time"),
        ((None, "2026-01-10T13:00:00Z", "2026-01-10T12:00:00Z"), "expected since < until"),
        (("1h", "2026-01-10T10:00:00Z", None), "--window and --since both set"),
    ],
)
def test_bad_bounds_are_one_sentence(args: tuple[str | None, ...], says: str) -> None:
    with pytest.raises(ConveyorError, match=says):
        window.bounds(*args, now=T0)


def test_only_the_window_is_read_and_late_feedback_is_joined(tmp_path, settings: Settings) -> None:
    x = logs.synthetic(settings, 6, seed=1)
    proba, predicted, actual = logs.scored(6, seed=1)
    ids = logs.write(tmp_path, settings, x, proba, predicted, actual, start=T0 - timedelta(seconds=3))
    # a second label for req-0, later: it wins; req-1's label never came
    with (tmp_path / "late.jsonl").open("ab") as out:
        out.write(predictionlog.encode(Feedback(ids[0], "2026-01-11T00:00:00.000Z", logs.NEGATIVE)))
    log = tmp_path / "req-primary.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(line for line in lines if not (b'"id":"req-1"' in line and b'"feedback"' in line)))

    found = window.read(tmp_path, settings, T0 - timedelta(seconds=2), T0 + timedelta(seconds=2))
    assert list(found.primary["id"]) == ["req-1", "req-2", "req-3", "req-4"]  # req-0 before, req-5 at the end: out
    assert np.isnan(found.primary.loc[0, "actual"])  # no label for req-1
    assert list(found.primary["actual"][1:]) == [float(a) for a in actual[2:5]]
    assert list(found.primary["probability"]) == pytest.approx(proba[1:5])
    assert found.shadow.empty and len(found.labelled()) == 3

    everything = window.read(tmp_path, settings, T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    assert everything.primary.loc[0, "actual"] == 0.0  # the latest label for req-0


def test_the_shadow_is_joined_on_the_primary_ids(tmp_path, settings: Settings) -> None:
    x = logs.synthetic(settings, 4, seed=2)
    proba, predicted, actual = logs.scored(4, seed=2)
    logs.write(tmp_path, settings, x, proba, predicted, actual, start=T0)
    logs.write(tmp_path, settings, x, 1 - proba, 1 - predicted, None, start=T0, role="shadow")
    found = window.read(tmp_path, settings, T0, T0 + timedelta(minutes=1))
    assert list(found.shadow["id"]) == list(found.primary["id"])
    assert list(found.labelled("shadow")["actual"]) == list(actual.astype(float))  # the primary's feedback
    assert list(found.shadow["probability"]) == pytest.approx(1 - proba)


def test_a_missing_folder_or_a_bad_record_is_one_sentence(tmp_path, settings: Settings) -> None:
    with pytest.raises(ConveyorError, match="is not a folder; expected the prediction log's folder"):
        window.read(tmp_path / "nowhere", settings, T0, T0 + timedelta(hours=1))
    (tmp_path / "bad.jsonl").write_text('{"kind": "prediction", "role": "primary", "id": 3}\n{}\n')
    with pytest.raises(ConveyorError, match=r"bad\.jsonl line 1: field 'id' is 3, expected a string"):
        window.read(tmp_path, settings, T0, T0 + timedelta(hours=1))
