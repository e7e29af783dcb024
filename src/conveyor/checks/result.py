"""The CheckResult contract: one JSON file per check under reports/.

`judgements` holds every gated value judged against its params.yaml Threshold (conveyor.config.Threshold.judge):
the gate table shows one row for each. A report written before they existed reads with none."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from conveyor.config import Judgement
from conveyor.paths import REPORTS


@dataclass(frozen=True)
class CheckResult:
    check: str
    passed: bool
    metrics: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    judgements: list[Judgement] = field(default_factory=list)

    @classmethod
    def from_failures(cls, check: str, failures: list[str], **kwargs: Any) -> CheckResult:
        """A result that passed exactly when there are no failures."""
        return cls(check=check, passed=not failures, failures=failures, **kwargs)

    @classmethod
    def judged(
        cls, check: str, judgements: list[Judgement], failures: Sequence[str] = (), **kwargs: Any
    ) -> CheckResult:
        """A result from judged thresholds: each broken one's sentence, then any other `failures`."""
        broken = [j.failure for j in judgements if j.failure]
        return cls.from_failures(check, broken + list(failures), judgements=judgements, **kwargs)

    def path(self, reports: Path = REPORTS) -> Path:
        return reports / f"{self.check}.json"

    def write(self, reports: Path = REPORTS) -> Path:
        reports.mkdir(parents=True, exist_ok=True)
        target = self.path(reports)
        target.write_text(json.dumps(asdict(self), indent=2, sort_keys=True, default=float) + "\n")
        return target

    @classmethod
    def read(cls, path: Path) -> CheckResult:
        data = json.loads(path.read_text())
        data["judgements"] = [Judgement(**j) for j in data.get("judgements", [])]
        return cls(**data)
