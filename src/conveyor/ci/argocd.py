"""Wait until Argo CD reports an environment Synced and Healthy while running the image git pins for it.

Reads the Argo CD REST API (GET /api/v1/applications/<name>) with the token the argocd CLI uses
(ARGOCD_AUTH_TOKEN) at ARGOCD_SERVER. Healthy alone is not enough: the application must also list the pinned
digest among its images, or an old healthy version would pass for the new one. Degraded fails at once: the
rollback workflow answers that (argocd/notifications.yaml)."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conveyor.errors import ConveyorError

SERVER_ENV = "ARGOCD_SERVER"
TOKEN_ENV = "ARGOCD_AUTH_TOKEN"  # noqa: S105 (the variable's name, not a token)
APP_PREFIX = "conveyor-"


@dataclass(frozen=True)
class Server:
    """The Argo CD API at ARGOCD_SERVER, called with the token in ARGOCD_AUTH_TOKEN."""

    url: str
    token: str

    @classmethod
    def from_env(cls) -> Server:
        host = os.environ.get(SERVER_ENV, "").strip()
        token = os.environ.get(TOKEN_ENV, "").strip()
        if not host or not token:
            missing = " and ".join(n for n, v in ((SERVER_ENV, host), (TOKEN_ENV, token)) if not v)
            raise ConveyorError(f"{missing} not set; expected the Argo CD server and an API token.")
        url = host if host.startswith(("http://", "https://")) else f"https://{host}"
        return cls(url.rstrip("/"), token)

    def application(self, name: str) -> dict[str, Any]:
        url = f"{self.url}/api/v1/applications/{urllib.parse.quote(name)}?refresh=normal"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.token}"})  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (scheme checked above)
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise ConveyorError(f"Argo CD answered HTTP {exc.code} for application {name!r}; expected 200.") from None


def state(app: dict[str, Any], digest: str) -> tuple[bool, str]:
    """(done, what it is now). Raises when the application is Degraded."""
    status = app.get("status") or {}
    health = (status.get("health") or {}).get("status", "Unknown")
    sync = (status.get("sync") or {}).get("status", "Unknown")
    images = (status.get("summary") or {}).get("images") or []
    running = any(digest in image for image in images)
    now = f"health {health}, sync {sync}, {'runs' if running else 'does not run yet'} {digest[:19]}"
    if health == "Degraded":
        raise ConveyorError(f"Argo CD reports {now}; expected Healthy, the rollback workflow takes over.")
    return health == "Healthy" and sync == "Synced" and running, now


def wait(
    fetch: Callable[[], dict[str, Any]],
    digest: str,
    timeout: float,
    poll: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str:
    """Poll until done; return the last state, or raise after `timeout` seconds naming the last state."""
    deadline = clock() + timeout
    while True:
        done, now = state(fetch(), digest)
        print(now, flush=True)
        if done:
            return now
        if clock() >= deadline:
            raise ConveyorError(f"Argo CD did not report Healthy within {timeout:g} s (last: {now}).")
        sleep(poll)
