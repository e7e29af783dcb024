"""params.yaml -> typed settings. The only module that reads params.yaml."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

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
    # demo: `conveyor data prepare` fetches the demo data into data/; dvc: data/ is yours, versioned in data.dvc,
    # and nothing in the pipeline ever writes into it.
    source: Literal["demo", "dvc"]
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


def human(number: float, digits: int, percent: bool = False, sign: bool = False) -> str:
    """A number as people read it: fixed to `digits` decimals then trailing zeros dropped, thousands grouped,
    never in scientific notation. 12990.4 -> '12,990' (digits 0); 0.8800 -> '0.88'; 0.0014 -> '0.14%' (percent)."""
    if not math.isfinite(number):
        return "n/a"
    scaled = number * 100 if percent else number
    text = f"{scaled:{'+' if sign else ''},.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text.lstrip("+-") == "0":
        text = "0"
    return text + ("%" if percent else "")


def significant(number: float, figures: int = 4, sign: bool = False) -> str:
    """`number` with `figures` significant digits, as `human` prints it: 12990.4 -> '12,990'; 0.92814 -> '0.9281';
    0.000025 -> '0.000025'. For figures with no threshold to say their digits (a report's breakdowns)."""
    if not math.isfinite(number) or number == 0:
        return human(number, 0, sign=sign)
    digits = min(9, max(0, figures - 1 - math.floor(math.log10(abs(number)))))
    return human(number, digits, sign=sign)


def distinct_digits(value: float, limit: float, digits: int, percent: bool = False) -> int:
    """`digits`, or as many more (up to 6) as it takes for `value` and `limit` to print differently."""
    for more in range(digits, digits + 7):
        if human(value, more, percent) != human(limit, more, percent):
            return more
    return digits + 6


@dataclass(frozen=True)
class Judgement:
    """One measured value judged against its Threshold: what the gate table shows on a row.

    `limit` is the bound the value is measured against (for a band, the nearer one), `comparison` the rule the
    value must meet against it (">=" or "<="), `margin` the signed distance to it: positive is headroom,
    negative the size of the breach. `failure` is one sentence when the value breaks the rule, else None."""

    metric: str
    label: str
    value: float
    limit: float
    comparison: Literal[">=", "<="]
    margin: float
    unit: str
    passed: bool
    failure: str | None
    min: float | None = None
    max: float | None = None
    digits: int = 3
    percent: bool = False

    def shown(self, number: float, sign: bool = False, unit: bool = False, digits: int | None = None) -> str:
        """`number` printed as this threshold prints its values (`unit`: followed by the unit, `6.8 ms`)."""
        text = human(number, self.digits if digits is None else digits, self.percent, sign)
        return f"{text} {self.unit}" if unit and self.unit and text != "n/a" else text

    def rule(self, unit: bool = False, digits: int | None = None) -> str:
        """The passing range: `≥ 0.88`, `≤ 1`, `0.1 to 0.4` (`unit`: `≤ 1 ms`)."""
        if self.min is not None and self.max is not None:
            return f"{self.shown(self.min, digits=digits)} to {self.shown(self.max, unit=unit, digits=digits)}"
        bound, sign = (self.min, "≥") if self.min is not None else (self.max, "≤")
        return f"{sign} {self.shown(bound, unit=unit, digits=digits)}"  # type: ignore[arg-type]

    def figures(self) -> tuple[str, str, str]:
        """(value, rule, margin) as the gate table shows them, each with its unit: `6.8 ms`, `≤ 1 ms`, `-5.8 ms`.
        A value that breaks its limit by less than `digits` show gets the digits it takes to tell them apart."""
        digits = self.digits if self.passed else distinct_digits(self.value, self.limit, self.digits, self.percent)
        shown = (self.shown(self.value, unit=True, digits=digits), self.rule(unit=True, digits=digits))
        return (*shown, self.shown(self.margin, sign=True, unit=True, digits=digits))


class Threshold(_Strict):
    """One gate limit in params.yaml: `min`, `max` or both (a band; both ends pass), what the number is (`label`,
    `unit`) and how to print it (`digits` after the point, trailing zeros dropped; `percent` shows fractions as
    percentages). `judge` is the only place a gated value is compared with its limit."""

    min: float | None = None
    max: float | None = None
    label: str = Field(min_length=1)
    unit: str = ""
    digits: int = Field(3, ge=0, le=9)
    percent: bool = False

    @model_validator(mode="before")
    @classmethod
    def _mapping(cls, data: Any) -> Any:
        if not isinstance(data, dict | Threshold):
            raise ValueError("expected a mapping with min and/or max and a label, such as {min: 0.88, label: ROC AUC}")
        return data

    @model_validator(mode="after")
    def _bounded(self) -> Threshold:
        if self.min is None and self.max is None:
            raise ValueError("expected min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is greater than max {self.max}")
        return self

    def judge(self, metric: str, value: float, subject: str | None = None) -> Judgement:
        """Judge `value` of `metric` (of `subject`, e.g. one sensitive feature); a value at a limit passes."""
        label = f"{self.label} ({subject})" if subject else self.label
        name = f"{metric}[{subject}]" if subject else metric
        value = float(value)
        below = None if self.min is None else value - self.min
        above = None if self.max is None else self.max - value
        if above is None or (below is not None and below <= above):
            limit, comparison, margin, broken = self.min, ">=", below, "<"
        else:
            limit, comparison, margin, broken = self.max, "<=", above, ">"
        assert limit is not None and margin is not None
        passed = math.isfinite(value) and margin >= 0
        failure = None
        if not passed:
            shown, bound = self._distinct(value, limit)
            unit = f" {self.unit}" if self.unit else ""
            failure = f"{label} = {shown}{unit} {broken} {bound}{unit}"
        return Judgement(
            metric=name,
            label=label,
            value=value,
            limit=float(limit),
            comparison=comparison,  # type: ignore[arg-type]
            margin=float(margin),
            unit=self.unit,
            passed=passed,
            failure=failure,
            min=self.min,
            max=self.max,
            digits=self.digits,
            percent=self.percent,
        )

    def _distinct(self, value: float, limit: float) -> tuple[str, str]:
        """The value and the limit printed with `digits`, or as many more as it takes for them to differ."""
        digits = distinct_digits(value, limit, self.digits, self.percent)
        return human(value, digits, self.percent), human(limit, digits, self.percent)


def _limits(low: float | None = None, high: float | None = None, needs: tuple[str, ...] = ()) -> AfterValidator:
    """A Threshold whose limits lie in [low, high] and that has each side in `needs` ("min", "max")."""

    def check(threshold: Threshold) -> Threshold:
        for side in needs:
            if getattr(threshold, side) is None:
                raise ValueError(f"expected a {side}")
        for bound in (threshold.min, threshold.max):
            if bound is not None and ((low is not None and bound < low) or (high is not None and bound > high)):
                span = f"between {low:g} and {high:g}" if high is not None else f"of at least {low:g}"
                raise ValueError(f"limit {bound:g} is out of range, expected limits {span}")
        return threshold

    return AfterValidator(check)


Ratio = Annotated[Threshold, _limits(0, 1)]
Positive = Annotated[Threshold, _limits(0)]


class _Gate(_Strict):
    def thresholds(self) -> dict[str, Threshold]:
        """This gate's thresholds by metric name, in params.yaml order."""
        return {name: value for name, value in self if isinstance(value, Threshold)}


class QualityGate(_Gate):
    rows: Annotated[Threshold, _limits(0, needs=("min", "max"))]
    label_rate: Annotated[Threshold, _limits(0, 1, needs=("min", "max"))]
    duplicate_fraction: Annotated[Threshold, _limits(0, 1, needs=("max",))]


class DriftColumnTest(_Strict):
    """An Evidently stat test by its registered name (e.g. wasserstein, ks, psi) and its per-column threshold.
    null defers to Evidently: a test chosen by sample size, that test's default threshold."""

    test: str | None = None
    threshold: float | None = Field(None, gt=0)
    # A column whose score breaks this blocks on its own, whatever the drifted share (a distance: max; a p-value:
    # min). Judged for every column, one gate-table row per drifted or blocking column.
    column: Threshold | None = None


class DriftGate(_Gate):
    drifted_share: Annotated[Threshold, _limits(0, 1, needs=("max",))]
    policy: Literal["block", "warn"]
    numeric: DriftColumnTest = DriftColumnTest()
    categorical: DriftColumnTest = DriftColumnTest()


class EvaluateGate(_Gate):
    roc_auc: Ratio
    pr_auc: Ratio
    f1: Ratio
    brier: Ratio
    # Not a fixed limit: the champion's ROC AUC minus this is, on the day (conveyor.checks.evaluate).
    champion_tolerance: float = Field(ge=0, le=1)


class FairnessGate(_Gate):
    equalized_odds_difference: Ratio
    demographic_parity_ratio: Ratio
    min_group_size: int = Field(ge=1)
    # a group's TPR needs positives and its FPR negatives: below these it is reported, not gated
    min_group_positives: int = Field(1, ge=1)
    min_group_negatives: int = Field(1, ge=1)


class LatencyGate(_Gate):
    """CPU time of the serving predictor in one thread (conveyor.checks.latency): what load does not move."""

    single_cpu_p99_ms: Positive
    batch_cpu_rows_per_s: Positive
    ready_cpu_seconds: Positive


class Directional(_Strict):
    """A feature the score must follow: raising it by `step` (capped at its max) moves the probability `direction`."""

    feature: str
    direction: Literal["up", "down"]
    step: float = Field(gt=0)


class BehaviourCase(_Strict):
    """A hand-written record and the label the model must give it (minimum functionality)."""

    name: str = Field(min_length=1)
    expect: str
    record: dict[str, Any]


class BehaviourGate(_Gate):
    """Behavioural tests of the trained model (conveyor.checks.behaviour), made policy."""

    rows: int = Field(500, ge=10)  # holdout rows the invariance and directional tests perturb
    invariant: list[str] = []  # features whose value must barely matter
    invariance_shift: Ratio  # mean |change in P(positive)| when an invariant feature's values trade places
    directional: list[Directional] = []
    directional_share: Ratio  # share of rows whose score does not move against the declared direction
    cases: list[BehaviourCase] = []
    cases_passed: Ratio  # share of the cases given their expected label

    @model_validator(mode="after")
    def _named(self) -> BehaviourGate:
        names = [case.name for case in self.cases]
        if len(set(names)) != len(names):
            raise ValueError("case names must be unique")
        return self


class Gates(_Strict):
    quality: QualityGate
    drift: DriftGate
    evaluate: EvaluateGate
    fairness: FairnessGate
    latency: LatencyGate
    behaviour: BehaviourGate


PREDICTION_LOG_DIR_ENV = "PREDICTION_LOG_DIR"
PREDICTION_LOG_URL_ENV = "PREDICTION_LOG_URL"
HTTP_URL = r"^https?://\S+$"


class PredictionLogSettings(_Strict):
    """The prediction log of `conveyor serve` (docs/monitoring.md): what is sampled, where it goes, and the bounds
    that keep it off the request path. No sink (`dir`, `url`, or their environment variables) means no log."""

    sample: float = Field(0.1, ge=0, le=1)  # share of predict requests whose records are logged
    negative_label: str = Field(min_length=1)  # the label name of a 0; data.positive_label names a 1
    exclude: list[str] = []  # features never written to the log (sensitive fields)
    dir: Path | None = None  # rotating JSON Lines files; $PREDICTION_LOG_DIR overrides
    url: str | None = Field(None, pattern=HTTP_URL)  # CloudEvents batches are POSTed here; $PREDICTION_LOG_URL
    queue_records: int = Field(10000, gt=0)  # records waiting for the writer; more are dropped and counted
    file_max_bytes: int = Field(16 * 2**20, ge=2**16)
    file_max_age_s: float = Field(3600, gt=0)  # a file older than this is closed at its next write
    total_max_bytes: int = Field(256 * 2**20, gt=0)  # the folder's *.jsonl files; the oldest are deleted
    http_batch_records: int = Field(500, gt=0)
    http_queue_batches: int = Field(4, gt=0)  # batches waiting for the HTTP sink; more are dropped and counted
    http_timeout_s: float = Field(5, gt=0)
    http_retries: int = Field(3, ge=0, le=10)  # after the first attempt, waiting http_backoff_s, doubling
    http_backoff_s: float = Field(0.5, ge=0)

    @model_validator(mode="after")
    def _room_for_two_files(self) -> PredictionLogSettings:
        if self.total_max_bytes < 2 * self.file_max_bytes:
            raise ValueError(
                f"total_max_bytes {self.total_max_bytes} is less than twice file_max_bytes {self.file_max_bytes}, "
                "expected room for the file being written and at least one closed file"
            )
        return self

    def with_env(self, env: Mapping[str, str]) -> PredictionLogSettings:
        """These settings with the sinks that $PREDICTION_LOG_DIR and $PREDICTION_LOG_URL name (when set and not
        empty) in place of params.yaml's; ConveyorError naming the variable for a bad value."""
        update: dict[str, Any] = {}
        if env.get(PREDICTION_LOG_DIR_ENV):
            update["dir"] = Path(env[PREDICTION_LOG_DIR_ENV])
        if env.get(PREDICTION_LOG_URL_ENV):
            update["url"] = env[PREDICTION_LOG_URL_ENV]
            if not re.match(HTTP_URL, update["url"]):
                raise ConveyorError(
                    f"{PREDICTION_LOG_URL_ENV} = {update['url']!r} is invalid: expected an http:// or https:// URL."
                )
        return self.model_copy(update=update) if update else self

    @property
    def on(self) -> bool:
        """Whether any sink is configured: without one the server logs nothing and writes nothing."""
        return self.dir is not None or self.url is not None


class ServeSettings(_Strict):
    port: int = Field(gt=0, lt=65536)
    max_batch_records: int = Field(gt=0)
    max_body_bytes: int = Field(gt=0)
    unknown_category: Literal["reject", "map_to_unknown"]
    prediction_log: PredictionLogSettings
    # Slow and greedy clients (docs/serving.md, Limits): deadlines, and bounds beyond which the answer is 503.
    keepalive_s: float = Field(5, gt=0, le=300)  # an idle connection between requests is closed after this
    header_timeout_s: float = Field(10, gt=0, le=300)  # from connecting (or a request's first byte) to its headers
    body_timeout_s: float = Field(30, gt=0, le=600)  # from the headers to the body's last byte: else 408
    max_connections: int = Field(512, gt=0)  # open connections; one more is answered 503 and closed
    max_pending_body_bytes: int = Field(64 * 2**20, gt=0)  # bytes of all bodies still arriving; beyond, 503
    max_batch_rows_in_flight: int = Field(8000, gt=0)  # batch rows queued for or in the thread pool; beyond, 503
    retry_after_s: int = Field(1, gt=0, le=3600)  # the Retry-After of every 503 for load

    @model_validator(mode="after")
    def _a_batch_fits_the_queue(self) -> ServeSettings:
        if self.prediction_log.queue_records < self.max_batch_records:
            raise ValueError(
                f"prediction_log.queue_records {self.prediction_log.queue_records} is less than max_batch_records "
                f"{self.max_batch_records}, expected room for a whole batch"
            )
        if self.max_pending_body_bytes < self.max_body_bytes:
            raise ValueError(
                f"max_pending_body_bytes {self.max_pending_body_bytes} is less than max_body_bytes "
                f"{self.max_body_bytes}, expected room for one whole body"
            )
        if self.max_batch_rows_in_flight < self.max_batch_records:
            raise ValueError(
                f"max_batch_rows_in_flight {self.max_batch_rows_in_flight} is less than max_batch_records "
                f"{self.max_batch_records}, expected room for one whole batch"
            )
        return self


DURATION = r"^[1-9][0-9]*[smh]$"  # an Argo Rollouts / Prometheus duration: 30s, 2m, 1h


class CanaryStep(_Strict):
    weight: int = Field(gt=0, le=100)
    pause: str = Field(pattern=DURATION)


class CanaryLoad(_Strict):
    rate: float = Field(gt=0)  # requests per second the load Job sends to all pods
    duration_s: int = Field(gt=0)  # how long it sends them (covers the canary's analysis)


class CanarySlo(_Strict):
    max_error_ratio: float = Field(ge=0, le=1)
    max_p95_latency_ms: float = Field(gt=0)
    max_score_shift: float = Field(ge=0, le=1)
    min_requests: int = Field(1, gt=0)  # canary predictions per window below which nothing is judged a pass
    window: str = Field("2m", pattern=DURATION)  # the rate window of every query
    initial_delay: str = Field("1m", pattern=DURATION)
    interval: str = Field("1m", pattern=DURATION)
    failure_limit: int = Field(1, ge=0)
    load: CanaryLoad = CanaryLoad(rate=5, duration_s=600)
    steps: dict[str, list[CanaryStep]] = Field(default_factory=dict)  # per environment, the Rollout's canary steps


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


class MonitoringSettings(_Strict):
    """Alerting (k8s/monitoring): the availability SLO and the live figures' thresholds. The latency SLO is
    deploy.canary.max_p95_latency_ms, the AUC floor is what `conveyor monitor` exports: not repeated here."""

    availability_slo: float = Field(gt=0, lt=1)
    slo_period: str = Field(pattern=r"^[1-9][0-9]*d$")
    max_log_drop_ratio: float = Field(ge=0, le=1)
    max_score_shift: float = Field(gt=0, le=1)
    monitor_stale_after: str = Field(pattern=DURATION)
    version_mismatch_for: str = Field(pattern=DURATION)


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


class GitCredentials(_Strict):
    """The checkout's https user name and token, read from a Kubernetes Secret in the pod; no value is in git."""

    secret: str = Field(pattern=K8S_NAME)
    username_key: str = Field("username", pattern=r"^[-._a-zA-Z0-9]+$")
    password_key: str = Field("token", pattern=r"^[-._a-zA-Z0-9]+$")


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
    cron_workflow: Literal["suspended", "active"] = "suspended"
    defaults: TaskResources
    tasks: dict[str, TaskOverride] = {}
    git_credentials: GitCredentials | None = None  # null: the repository is cloned anonymously
    image_pull_secret: str | None = Field(None, pattern=K8S_NAME)  # null: the image is pulled anonymously

    @field_validator("repository")
    @classmethod
    def _no_credentials_in_url(cls, repository: str) -> str:
        if re.match(r"^https://[^/@]*@", repository):
            raise ValueError(
                "expected no user or token in the URL, which git and the workflow's logs would show; "
                "use argo.git_credentials"
            )
        return repository

    @field_validator("git_credentials")
    @classmethod
    def _https_only(cls, credentials: GitCredentials | None, info: ValidationInfo) -> GitCredentials | None:
        repository = info.data.get("repository")
        if credentials is not None and repository is not None and not repository.startswith("https://"):
            raise ValueError(f"expected an https:// argo.repository for a user name and token, not {repository!r}")
        return credentials

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


class Bootstrap(_Strict):
    """The paired bootstrap of champion against challenger: resamples, confidence level and a fixed seed, so a
    window's interval is the same on every run."""

    resamples: int = Field(ge=100, le=100_000)
    confidence: float = Field(gt=0.5, lt=1)
    seed: int


class MonitorSettings(_Strict):
    """`conveyor monitor` (conveyor.monitor): live traffic judged against the training reference. Drift reuses
    gates.drift, the ROC AUC floor gates.evaluate.roc_auc and fairness gates.fairness; these are its own."""

    min_records: int = Field(ge=1)  # primary predictions in a window below which drift and score shift are not judged
    min_labelled: int = Field(ge=1)  # labelled ones below which performance and fairness are not judged
    precision: Ratio
    recall: Ratio
    calibration_error: Ratio  # expected calibration error, equal-width probability bins
    calibration_bins: int = Field(ge=2, le=100)
    score_shift: Annotated[Threshold, _limits(0, needs=("max",))]  # PSI of live scores against the holdout's
    score_bins: int = Field(ge=2, le=100)
    failed_windows: int = Field(ge=1)  # consecutive failed windows that send the retrain dispatch
    cooldown: str = Field(pattern=DURATION)  # after a dispatch, none again for this long
    bootstrap: Bootstrap
    repository: str = Field(pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")  # owner/name the dispatch goes to
    github_api: str = Field(pattern=r"^https?://\S+$")


class Settings(_Strict):
    data: DataSettings
    split: SplitSettings
    model: ModelSettings
    gates: Gates
    serve: ServeSettings
    deploy: DeploySettings
    monitoring: MonitoringSettings
    argo: ArgoSettings
    monitor: MonitorSettings


def _describe(error: dict[str, Any], source: Path) -> str:
    """One sentence naming the field, the value and what was expected."""
    where = ".".join(str(p) for p in error["loc"] if not str(p).startswith(("function-after", "tagged-union")))
    value = error.get("input")
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{source}: unknown key {where!r}; remove it or check its spelling."
    if kind == "missing":
        return f"{source}: required field {where!r} is missing."
    shown = repr(value) if not isinstance(value, dict) else _inline(value)
    said = error["msg"].removeprefix("Value error, ")
    return f"{source}: {where or 'the file'} = {shown} is invalid: {said[:1].lower()}{said[1:]}."


def _inline(mapping: dict[str, Any]) -> str:
    """A small mapping as YAML's flow style writes it, `{min: 0.5, label: ROC AUC}`; a large one is `a mapping`."""
    shown = "{" + ", ".join(f"{k}: {v}" for k, v in mapping.items()) + "}"
    return shown if len(shown) <= 100 and not any(isinstance(v, dict | list) for v in mapping.values()) else "a mapping"


def load_settings(path: Path | str | None = None) -> Settings:
    """Read and validate params.yaml (or $CONVEYOR_PARAMS); raise ConveyorError with one sentence."""
    source = Path(path or os.environ.get(PARAMS_ENV) or DEFAULT_PARAMS)
    try:
        raw = yaml.safe_load(source.read_text())
    except FileNotFoundError:
        raise ConveyorError(f"{source}: the configuration file does not exist.") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConveyorError(f"{source}: not valid YAML{where}: {exc.problem or exc.context}.") from None
    except yaml.YAMLError as exc:
        raise ConveyorError(f"{source}: not valid YAML ({exc.__class__.__name__}).") from None
    if not isinstance(raw, dict):
        raise ConveyorError(f"{source}: expected a mapping at the top level, got {type(raw).__name__}.")
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        first = min(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")  # a typo explains a "missing"
        raise ConveyorError(_describe(first, source)) from None
    _cross_check(settings, source)
    return settings


def _cross_check(settings: Settings, source: Path) -> None:
    """Rules that span two sections of params.yaml, said with the field that breaks them."""
    mitigation, sensitive = settings.model.mitigation, settings.data.sensitive_features
    if mitigation.method != "none" and mitigation.feature not in sensitive:
        raise ConveyorError(
            f"{source}: model.mitigation.feature = {mitigation.feature!r} is invalid: "
            f"expected one of data.sensitive_features {sensitive}."
        )
    log = settings.serve.prediction_log
    for name in log.exclude:
        if name not in settings.data.features:
            raise ConveyorError(
                f"{source}: serve.prediction_log.exclude = {name!r} is invalid: expected one of data.features."
            )
    if log.negative_label == settings.data.positive_label:
        raise ConveyorError(
            f"{source}: serve.prediction_log.negative_label = {log.negative_label!r} is invalid: "
            "expected a label name other than data.positive_label."
        )
