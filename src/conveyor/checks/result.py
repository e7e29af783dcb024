"""The CheckResult contract: one JSON file per check under reports/."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

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

    @classmethod
    def from_failures(cls, check: str, failures: list[str], **kwargs: Any) -> CheckResult:
        """A result that passed exactly when there are no failures."""
        return cls(check=check, passed=not failures, failures=failures, **kwargs)

    def path(self, reports: Path = REPORTS) -> Path:
        return reports / f"{self.check}.json"

    def write(self, reports: Path = REPORTS) -> Path:
        reports.mkdir(parents=True, exist_ok=True)
        target = self.path(reports)
        target.write_text(json.dumps(asdict(self), indent=2, sort_keys=True, default=float) + "\n")
        return target

    @classmethod
    def read(cls, path: Path) -> CheckResult:
        return cls(**json.loads(path.read_text()))


def breach(name: str, value: float, op: str, limit: float) -> str:
    """One failure sentence: `roc_auc = 0.8123 < 0.8800`."""
    return f"{name} = {value:.4g} {op} {limit:.4g}"
