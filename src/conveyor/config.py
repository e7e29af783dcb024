"""params.yaml -> typed settings. The only module that reads params.yaml."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from conveyor.errors import ConveyorError

PARAMS_ENV = "CONVEYOR_PARAMS"
DEFAULT_PARAMS = Path("params.yaml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NumericFeature(_Strict):
    type: Literal["int", "float"]
    min: float
    max: float
    max_null_fraction: float = Field(0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> NumericFeature:
        if self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self


class CategoryFeature(_Strict):
    type: Literal["category"]
    values: list[str] = Field(min_length=1)
    max_null_fraction: float = Field(0.0, ge=0, le=1)


Feature = Annotated[NumericFeature | CategoryFeature, Field(discriminator="type")]


class DataSettings(_Strict):
    path: Path
    incoming_path: Path
    batches_dir: Path
    ingest_rows: int = Field(gt=0)
    target: str
    positive_label: str
    features: dict[str, Feature] = Field(min_length=1)
    sensitive_features: list[str]

    @model_validator(mode="after")
    def _known_columns(self) -> DataSettings:
        for name in self.sensitive_features:
            if name not in self.features:
                raise ValueError(f"sensitive feature {name!r} is not one of the features")
        if self.target in self.features:
            raise ValueError(f"target {self.target!r} is also listed as a feature")
        return self

    @property
    def numeric(self) -> list[str]:
        return [n for n, f in self.features.items() if f.type != "category"]

    @property
    def categorical(self) -> list[str]:
        return [n for n, f in self.features.items() if f.type == "category"]


class SplitSettings(_Strict):
    test_size: float = Field(gt=0, lt=1)
    seed: int


class Mitigation(_Strict):
    """Per-group decision thresholds for one sensitive feature (conveyor.training.mitigation); none keeps one threshold."""

    method: Literal["none", "threshold_optimizer"] = "none"
    feature: str | None = None
    constraint: Literal[
        "equalized_odds", "true_positive_rate_parity", "false_positive_rate_parity", "demographic_parity"
    ] = "true_positive_rate_parity"
    objective: Literal["accuracy_score", "balanced_accuracy_score"] = "accuracy_score"
    cv_folds: int = Field(3, ge=2)
    min_group_rows: int = Field(400, ge=1)

    @model_validator(mode="after")
    def _feature_named(self) -> Mitigation:
        if self.method != "none" and not self.feature:
            raise ValueError(f"method {self.method!r} needs a sensitive feature")
        return self


class ModelSettings(_Strict):
    name: str
    estimator: str = Field(pattern=r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$")
    params: dict[str, Any] = {}
    decision_threshold: float = Field(gt=0, lt=1)
    trusted_types: list[str] = []
    mitigation: Mitigation = Mitigation()


class RateBounds(_Strict):
    min: float = Field(ge=0, le=1)
    max: float = Field(ge=0, le=1)


class QualityGate(_Strict):
    min_rows: int = Field(ge=0)
    max_rows: int = Field(gt=0)
    label_rate: RateBounds
    max_duplicate_fraction: float = Field(ge=0, le=1)


class DriftColumnTest(_Strict):
    """An Evidently stat test by its registered name (e.g. wasserstein, ks, psi) and its per-column threshold.
    null defers to Evidently: a test chosen by sample size, that test's default threshold."""

    test: str | None = None
    threshold: float | None = Field(None, gt=0)


class DriftGate(_Strict):
    max_drifted_share: float = Field(ge=0, le=1)
    policy: Literal["block", "warn"]
    numeric: DriftColumnTest = DriftColumnTest()
    categorical: DriftColumnTest = DriftColumnTest()


class EvaluateGate(_Strict):
    min_roc_auc: float = Field(ge=0, le=1)
    min_pr_auc: float = Field(ge=0, le=1)
    min_f1: float = Field(ge=0, le=1)
    max_brier: float = Field(ge=0, le=1)
    champion_tolerance: float = Field(ge=0, le=1)


class FairnessGate(_Strict):
    max_equalized_odds_difference: float = Field(ge=0, le=1)
    min_demographic_parity_ratio: float = Field(ge=0, le=1)
    min_group_size: int = Field(ge=1)


class LatencyGate(_Strict):
    max_single_p99_ms: float = Field(gt=0)
    min_batch_rows_per_s: float = Field(gt=0)
    max_load_seconds: float = Field(gt=0)


class Gates(_Strict):
    quality: QualityGate
    drift: DriftGate
    evaluate: EvaluateGate
    fairness: FairnessGate
    latency: LatencyGate


class ServeSettings(_Strict):
    port: int = Field(gt=0, lt=65536)
    max_batch_records: int = Field(gt=0)
    max_body_bytes: int = Field(gt=0)
    unknown_category: Literal["reject", "map_to_unknown"]


class CanarySlo(_Strict):
    max_error_ratio: float = Field(ge=0, le=1)
    max_p95_latency_ms: float = Field(gt=0)
    max_score_shift: float = Field(ge=0, le=1)


class SmokeSettings(_Strict):
    requests: int = Field(gt=0)
    max_p95_latency_ms: float = Field(gt=0)


class DeploySettings(_Strict):
    environments: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*$")]] = Field(min_length=1)
    push_attempts: int = Field(ge=1, le=20)
    mlflow_ui: str = Field(pattern=r"^https?://\S+$")
    canary: CanarySlo
    smoke: SmokeSettings
    healthy_timeout_s: float = Field(900, gt=0)  # deploy workflow: how long Argo CD may take to report Healthy
    healthy_poll_s: float = Field(10, gt=0)


K8S_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
K8S_CPU = r"^\d+(\.\d+)?m?$"
K8S_BYTES = r"^\d+(Ki|Mi|Gi|Ti)$"


class TaskOverride(_Strict):
    """One Argo task's share, overriding argo.defaults field by field."""

    cpu: str | None = Field(None, pattern=K8S_CPU)
    memory: str | None = Field(None, pattern=K8S_BYTES)
    retries: int | None = Field(None, ge=0, le=10)


class TaskResources(_Strict):
    """What an Argo task gets: CPU and memory (requests equal limits) and retries of its pod."""

    cpu: str = Field(pattern=K8S_CPU)
    memory: str = Field(pattern=K8S_BYTES)
    retries: int = Field(ge=0, le=10)

    @property
    def threads(self) -> int:
        """Whole CPUs of the request, at least one: OpenMP's thread count, so training is never throttled."""
        cores = float(self.cpu[:-1]) / 1000 if self.cpu.endswith("m") else float(self.cpu)
        return max(1, int(cores))


class SecretKey(_Strict):
    """An environment variable's value from a Kubernetes Secret; an optional one is left unset when missing."""

    secret: str = Field(pattern=K8S_NAME)
    key: str = Field(pattern=r"^[-._a-zA-Z0-9]+$")
    optional: bool = False


class Workspace(_Strict):
    size: str = Field(pattern=K8S_BYTES)
    access_mode: Literal["ReadWriteOnce", "ReadWriteOncePod", "ReadWriteMany"]
    storage_class: str | None = None


class ArgoRetry(_Strict):
    policy: Literal["Always", "OnFailure", "OnError", "OnTransientError"]
    backoff_seconds: int = Field(ge=1)
    factor: int = Field(ge=1)


class ArgoSettings(_Strict):
    namespace: str = Field(pattern=K8S_NAME)
    image: str = Field(pattern=r"^[a-z0-9][\w.\-/:@]*$")
    repository: str = Field(pattern=r"^(https://|ssh://|git@)\S+$")
    revision: str = Field(min_length=1)
    workspace: Workspace
    secrets: dict[Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]*$")], SecretKey]
    retry: ArgoRetry
    deadline_seconds: int = Field(gt=0)
    keep_finished_seconds: int = Field(ge=0)
    poll_seconds: float = Field(gt=0)
    defaults: TaskResources
    tasks: dict[str, TaskOverride] = {}

    @field_validator("secrets")
    @classmethod
    def _tracking_from_secret(cls, secrets: dict[str, SecretKey]) -> dict[str, SecretKey]:
        tracking = secrets.get("MLFLOW_TRACKING_URI")
        if tracking is None or tracking.optional:
            raise ValueError("expected a required MLFLOW_TRACKING_URI, as the embedded sqlite file dies with the pod")
        return secrets

    def resources(self, task: str) -> TaskResources:
        """argo.defaults with the task's own entry laid over it."""
        override = self.tasks.get(task)
        if override is None:
            return self.defaults
        return self.defaults.model_copy(update=override.model_dump(exclude_none=True))


class Settings(_Strict):
    data: DataSettings
    split: SplitSettings
    model: ModelSettings
    gates: Gates
    serve: ServeSettings
    deploy: DeploySettings
    argo: ArgoSettings


def _describe(error: dict[str, Any], source: Path) -> str:
    """One sentence naming the field, the value and what was expected."""
    where = ".".join(str(p) for p in error["loc"] if not str(p).startswith(("function-after", "tagged-union")))
    value = error.get("input")
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{source}: unknown key {where!r}; remove it or check its spelling."
    if kind == "missing":
        return f"{source}: required field {where!r} is missing."
    shown = repr(value) if not isinstance(value, dict) else "a mapping"
    return f"{source}: {where or 'the file'} = {shown} is invalid: {error['msg'].lower()}."


def load_settings(path: Path | str | None = None) -> Settings:
    """Read and validate params.yaml (or $CONVEYOR_PARAMS); raise ConveyorError with one sentence."""
    source = Path(path or os.environ.get(PARAMS_ENV) or DEFAULT_PARAMS)
    try:
        raw = yaml.safe_load(source.read_text())
    except FileNotFoundError:
        raise ConveyorError(f"{source}: the configuration file does not exist.") from None
    except yaml.YAMLError as exc:
        raise ConveyorError(f"{source}: not valid YAML ({exc.__class__.__name__}).") from None
    if not isinstance(raw, dict):
        raise ConveyorError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}.")
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        first = min(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")  # a typo explains a "missing"
        raise ConveyorError(_describe(first, source)) from None
