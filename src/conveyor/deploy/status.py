"""`conveyor deploy status`: what each environment runs, read from git, and the commit that put it there."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from conveyor.config import Settings
from conveyor.deploy import history, release
from conveyor.deploy.git import Git


@dataclass(frozen=True)
class Row:
    environment: str
    model_version: int
    image: str
    gate_report: str
    commit: str
    date: str
    subject: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def table(git: Git, settings: Settings) -> list[Row]:
    rows = []
    for environment in settings.deploy.environments:
        path = release.release_path(environment)
        now = release.read(git.root / path)
        changes = history.log(git, path)
        last = changes[-1] if changes else history.Commit(sha="", date="", subject="(not committed)", body="")
        rows.append(
            Row(
                environment=environment,
                model_version=now.model_version,
                image=str(now.image),
                gate_report=now.gate_report,
                commit=last.sha,
                date=last.date,
                subject=last.subject,
            )
        )
    return rows


def render(rows: list[Row]) -> str:
    width = max(len(r.environment) for r in rows)
    lines = []
    for r in rows:
        lines.append(f"{r.environment:<{width}}  model v{r.model_version}  {r.image}")
        lines.append(f"{'':<{width}}  since {r.commit[:12]} {r.date}  {r.subject}")
    return "\n".join(lines)
