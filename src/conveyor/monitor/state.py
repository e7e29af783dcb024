"""The retrain trigger: a count of consecutive failed windows kept across runs in a small JSON file, and the
`conveyor-retrain` repository_dispatch sent when it reaches params.yaml monitor.failed_windows.

- A judged failed window adds one; a judged passed window resets the count to 0; a window too small to judge
  leaves it as it is (it confirms nothing either way).
- A new primary model version resets the count: the windows before it judged another model.
- Sending resets the count to 0 and starts monitor.cooldown: no second dispatch before it ends, however many
  windows fail, so one confirmed problem is one retrain, not one per run while the retrain is under way.
  A dry run prints the request and changes neither the count's reset nor the cooldown.

GitHub limits client_payload to 10 top-level properties and under 64 KB (the REST API's description,
github/rest-api-description): the payload has 6, and the failures are cut to a few short sentences."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from conveyor.errors import ConveyorError

EVENT_TYPE = "conveyor-retrain"
TOKEN_ENV = "GITHUB_TOKEN"  # noqa: S105 - the variable's name, not a value
API_VERSION = "2022-11-28"
MAX_FAILURES = 5  # failure sentences in the payload
MAX_SENTENCE = 200  # characters of each
STATE_FILE = ".monitor-state.json"  # beside the log, unless --state names another file


@dataclass(frozen=True)
class State:
    consecutive_failed: int = 0
    model_version: str | None = None
    last_window: str | None = None
    dispatched_at: str | None = None


@dataclass(frozen=True)
class Request:
    """One POST to GitHub's dispatches endpoint; the token is added only when it is sent."""

    url: str
    body: dict[str, Any]

    def shown(self) -> str:
        """The request as `--dry-run` prints it: method, URL, headers without the token, the JSON body."""
        return (
            f"POST {self.url}\nAccept: application/vnd.github+json\nAuthorization: Bearer <{TOKEN_ENV}>\n"
            f"X-GitHub-Api-Version: {API_VERSION}\n\n{json.dumps(self.body, indent=2)}"
        )


def load(path: Path) -> State:
    if not path.exists():
        return State()
    try:
        return State(**json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise ConveyorError(
            f"--state = {str(path)!r} is not a monitor state file ({exc}); expected the JSON `conveyor monitor` "
            "writes, or remove it to start counting again."
        ) from None


def save(path: Path, state: State) -> None:
    """Written beside and renamed over, so a run that dies mid-write leaves the last state whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(asdict(state), indent=2, sort_keys=True) + "\n")
    partial.replace(path)


def advance(state: State, judged: bool, passed: bool, version: str | None, window: str) -> State:
    """The count after one window."""
    count = 0 if version is not None and state.model_version not in (None, version) else state.consecutive_failed
    if judged:
        count = 0 if passed else count + 1
    return State(count, version or state.model_version, window, state.dispatched_at)


def due(state: State, failed_windows: int, cooldown_seconds: float, now: datetime) -> bool:
    """Whether this run sends the dispatch: the count reached the limit and no cooldown is running."""
    if state.consecutive_failed < failed_windows:
        return False
    if state.dispatched_at is None:
        return True
    return (now - datetime.fromisoformat(state.dispatched_at)).total_seconds() >= cooldown_seconds


def request(
    api: str,
    repository: str,
    window: str,
    failing: list[str],
    failures: list[str],
    version: str | None,
    consecutive: int,
) -> Request:
    """The repository_dispatch request: event_type `conveyor-retrain` and what train.yml may show of why."""
    payload = {
        "window": window,
        "failing_checks": failing,
        "failures": [sentence[:MAX_SENTENCE] for sentence in failures[:MAX_FAILURES]],
        "model_version": version,
        "consecutive_failed_windows": consecutive,
        "source": "conveyor monitor",
    }
    return Request(
        f"{api.rstrip('/')}/repos/{repository}/dispatches", {"event_type": EVENT_TYPE, "client_payload": payload}
    )


def send(req: Request) -> None:
    """POST it with the token from $GITHUB_TOKEN (never printed); GitHub answers 204 No Content."""
    if not req.url.startswith(("https://", "http://")):
        raise ConveyorError(f"the retrain dispatch URL {req.url!r} is not http(s); expected GitHub's API URL.")
    token = os.environ.get(TOKEN_ENV)
    if not token:
        raise ConveyorError(f"${TOKEN_ENV} is not set; the retrain dispatch needs a token (or use --dry-run).")
    http = urllib.request.Request(  # noqa: S310 - http(s) only, checked above
        req.url,
        data=json.dumps(req.body).encode(),
        method="POST",
        headers={
            "Accept": "application/vnd.github+json",
            "Authorization": f"Bearer {token}",
            "X-GitHub-Api-Version": API_VERSION,
            "Content-Type": "application/json",
            "User-Agent": "conveyor-monitor",
        },
    )
    try:
        with urllib.request.urlopen(http, timeout=30) as response:  # noqa: S310 - http(s) only, checked above
            status = response.status
    except urllib.error.HTTPError as exc:
        raise ConveyorError(f"the retrain dispatch to {req.url} got HTTP {exc.code}; expected 204.") from None
    except OSError as exc:
        raise ConveyorError(f"the retrain dispatch to {req.url} failed ({exc}); expected GitHub's API.") from None
    if status != 204:
        raise ConveyorError(f"the retrain dispatch to {req.url} got HTTP {status}; expected 204.")
