"""The retrain trigger: the count across windows, the cooldown, the dispatch request, and sending it to a real
HTTP server on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from conveyor.errors import ConveyorError
from conveyor.monitor import state
from conveyor.monitor.state import State
from tests.support.github import Recorder

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
DAY = 24 * 3600.0


def windows(outcomes: list[str], version: str = "1", start: State | None = None) -> State:
    """Advance through `outcomes`: 'fail', 'pass' or 'none' (not judged)."""
    current = start or State()
    for n, outcome in enumerate(outcomes):
        current = state.advance(current, outcome != "none", outcome == "pass", version, f"w{n}")
    return current


def test_failed_windows_count_passes_reset_and_unjudged_windows_leave_the_count() -> None:
    assert windows(["fail", "fail"]).consecutive_failed == 2
    assert windows(["fail", "fail", "pass", "fail"]).consecutive_failed == 1
    assert windows(["fail", "none", "fail"]).consecutive_failed == 2
    assert windows(["fail", "fail"]).last_window == "w1"


def test_a_new_model_version_starts_the_count_again() -> None:
    before = windows(["fail", "fail"], version="1")
    assert windows(["fail"], version="2", start=before).consecutive_failed == 1
    assert windows(["fail"], version="1", start=before).consecutive_failed == 3


def test_due_at_the_limit_and_not_again_within_the_cooldown() -> None:
    assert not state.due(windows(["fail"] * 2), 3, DAY, NOW)
    assert state.due(windows(["fail"] * 3), 3, DAY, NOW)
    sent = State(consecutive_failed=3, dispatched_at=(NOW - timedelta(hours=1)).isoformat())
    assert not state.due(sent, 3, DAY, NOW)
    assert state.due(sent, 3, DAY, NOW + timedelta(days=1))


def test_the_request_is_githubs_dispatch_within_its_payload_limits() -> None:
    failures = [f"drift score (c{n}) = {'9' * 400} > 0.3" for n in range(20)]
    req = state.request("https://api.example/", "org/repo", "w", ["drift"], failures, "7", 3)
    assert req.url == "https://api.example/repos/org/repo/dispatches"
    assert req.body["event_type"] == "conveyor-retrain"
    payload = req.body["client_payload"]
    assert payload["model_version"] == "7" and payload["failing_checks"] == ["drift"]
    assert len(payload) <= 10 and len(json.dumps(payload)) < 64 * 1024  # GitHub's limits
    assert len(payload["failures"]) == state.MAX_FAILURES
    assert all(len(f) <= state.MAX_SENTENCE for f in payload["failures"])


def test_the_dry_run_text_names_no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_secretvalue")
    shown = state.request("https://api.example", "org/repo", "w", [], [], None, 3).shown()
    assert "ghs_secretvalue" not in shown and "Authorization: Bearer <GITHUB_TOKEN>" in shown


def test_send_posts_with_the_token_from_the_environment(github: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_test")
    req = state.request(github, "org/repo", "w", ["drift"], ["x"], "1", 3)
    state.send(req)
    (seen,) = Recorder.seen
    assert seen["path"] == "/repos/org/repo/dispatches" and seen["body"] == req.body
    assert seen["headers"]["Authorization"] == "Bearer ghs_test"
    assert seen["headers"]["Accept"] == "application/vnd.github+json"


def test_send_without_a_token_or_refused_is_one_sentence(github: str, monkeypatch: pytest.MonkeyPatch) -> None:
    req = state.request(github, "org/repo", "w", [], [], None, 3)
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    with pytest.raises(ConveyorError, match=r"\$GITHUB_TOKEN is not set"):
        state.send(req)
    monkeypatch.setenv("GITHUB_TOKEN", "ghs_test")
    Recorder.status = 404
    with pytest.raises(ConveyorError, match="got HTTP 404; expected 204"):
        state.send(req)


def test_the_state_file_round_trips_and_a_corrupt_one_is_one_sentence(tmp_path) -> None:
    path = tmp_path / "state.json"
    assert state.load(path) == State()
    state.save(path, State(2, "1", "w", None))
    assert state.load(path) == State(2, "1", "w", None)
    path.write_text("[1, 2]")
    with pytest.raises(ConveyorError, match="is not a monitor state file"):
        state.load(path)
