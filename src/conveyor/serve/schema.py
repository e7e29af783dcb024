"""The request schema, built from the features in params.yaml (types, ranges, allowed categories), and the
translation of every way a request can be wrong into a 4xx that names the field, the value and what was
expected."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError
from typing_extensions import TypedDict

from conveyor.config import CategoryFeature, Feature, Settings
from conveyor.errors import ConveyorError

Record = dict[str, Any]
MAX_PROBLEMS = 20  # problems listed in one response; the count says how many there were


class _Absent:
    """The value of a problem that has none to show (a missing field, a body too large to quote)."""


ABSENT: Any = _Absent()


@dataclass(frozen=True)
class Problem:
    field: str
    value: Any
    expected: str
    verdict: str = "is invalid"

    def sentence(self) -> str:
        shown = "" if self.value is ABSENT else f" = {show(self.value)}"
        return f"{self.field}{shown} {self.verdict}: expected {self.expected}."


class BadRequest(ConveyorError):
    """A request the API refuses: an HTTP status and the problems found, the first one as the message; `headers`
    go with the answer (Retry-After, Connection: close)."""

    def __init__(self, status: int, problems: list[Problem], headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
        self.status = status
        self.problems = problems
        self.headers = headers
        extra = f" ({len(problems) - 1} more problems listed)" if len(problems) > 1 else ""
        super().__init__(problems[0].sentence()[:-1] + extra + ".")

    def body(self) -> dict[str, Any]:
        return {
            "error": str(self),
            "problems": [
                {
                    "field": p.field,
                    "value": None if p.value is ABSENT else show(p.value),
                    "expected": p.expected,
                }
                for p in self.problems[:MAX_PROBLEMS]
            ],
            "problem_count": len(self.problems),
        }


def show(value: Any, limit: int = 80) -> str:
    """A value as the client sent it (JSON spelling), cut to `limit` characters. Never raises: whatever a
    client sends must come back as a 4xx, not as a failure to describe it."""
    if isinstance(value, float) and not math.isfinite(value):
        text = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    elif type(value) is int and not -(2**63) <= value < 2**64:  # JSON allows 4,300 digits; none are worth echoing
        text = f"an integer of {len(str(abs(value)))} digits"
    elif isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
    else:
        try:
            text = orjson.dumps(value).decode()
        except TypeError:  # nested deeper than orjson writes, an integer beyond 64 bits, a lone surrogate
            text = f"a deeply nested {type(value).__name__}" if isinstance(value, list | dict) else ascii(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _key(name: str) -> str:
    """A client's key as a field name that JSON can carry: a lone surrogate is written as its escape, \\ud800."""
    return name.encode("utf-8", "backslashreplace").decode()


EXACT_INTEGERS = 2**53  # a float at or beyond this is no exact integer: it stays a float, refused as such


def _integral(value: Any) -> Any:
    """JSON has one number type: 37.0 is accepted for an integer feature; 37.5, "37" and true are not, and
    neither is 1e308, which stays a float (echoed as 1e308, not as its 309 digits)."""
    if type(value) is float and value.is_integer() and abs(value) < EXACT_INTEGERS:
        return int(value)
    return value


def _number(feature: Feature) -> Any:
    if feature.type == "int":
        low, high = math.ceil(feature.min), math.floor(feature.max)
        return Annotated[int, Field(strict=True, ge=low, le=high), BeforeValidator(_integral)]
    return Annotated[float, Field(strict=True, allow_inf_nan=False, ge=feature.min, le=feature.max)]


def _category(feature: CategoryFeature, policy: str) -> Any:
    if policy == "reject":
        return Literal[tuple(feature.values)]
    return Annotated[
        str,
        Field(
            strict=True,
            description="Known values: " + ", ".join(feature.values) + ". Any other value is treated as missing.",
            json_schema_extra={"x-known-values": list(feature.values)},
        ),
    ]


def expectation(feature: Feature, policy: str) -> str:
    """What a valid value of this feature looks like, in words."""
    if feature.type == "category":
        if policy == "reject":
            text = "one of " + ", ".join(repr(v) for v in feature.values)
        else:
            text = "a string (unknown categories are treated as missing)"
    elif feature.type == "int":
        text = f"an integer from {math.ceil(feature.min)} to {math.floor(feature.max)}"
    else:
        text = f"a finite number from {feature.min:g} to {feature.max:g}"
    return text + (" or null" if feature.max_null_fraction > 0 else "")


class RequestSchema:
    """Validates parsed JSON bodies: one record (an object) or a batch (an array of objects)."""

    def __init__(self, settings: Settings) -> None:
        self.features = settings.data.features
        self.policy = settings.serve.unknown_category
        self.max_batch = settings.serve.max_batch_records
        fields: dict[str, Any] = {}
        for name, feature in self.features.items():
            kind = _number(feature) if feature.type != "category" else _category(feature, self.policy)
            fields[name] = kind | None if feature.max_null_fraction > 0 else kind
        record = TypedDict("Record", fields)  # type: ignore[misc]
        record.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
        self._one = TypeAdapter(record)
        self._many = TypeAdapter(list[record])  # type: ignore[valid-type]
        self.expected = {name: expectation(f, self.policy) for name, f in self.features.items()}

    def record_schema(self, ref_template: str) -> dict[str, Any]:
        return self._one.json_schema(ref_template=ref_template)

    def body_schema(self, record_ref: str) -> dict[str, Any]:
        return {
            "oneOf": [
                {"$ref": record_ref},
                {"type": "array", "items": {"$ref": record_ref}, "minItems": 1, "maxItems": self.max_batch},
            ]
        }

    def validate(self, payload: Any) -> tuple[list[Record], bool]:
        """(records, whether the body was a single record); BadRequest naming every problem found."""
        try:
            if isinstance(payload, dict):
                return [self._one.validate_python(payload)], True
            if isinstance(payload, list) and 0 < len(payload) <= self.max_batch:
                return self._many.validate_python(payload), False
        except ValidationError as exc:
            raise BadRequest(422, [self._problem(e, isinstance(payload, list)) for e in exc.errors()]) from None
        if isinstance(payload, list):
            verdict = f"is an array of {len(payload)} records"
            raise BadRequest(422, [Problem("body", ABSENT, f"1 to {self.max_batch} records", verdict)])
        expected = f"a JSON object (one record) or an array of 1 to {self.max_batch} records"
        raise BadRequest(422, [Problem("body", payload, expected)])

    def validate_rows(self, rows: list[Record], field: Callable[[int, str], str], status: int) -> list[Record]:
        """Records another protocol built (V2 tensors, every feature present): the same checks as `validate`, each
        problem's field named by `field(row, feature)`, refused with `status`."""
        try:
            return self._many.validate_python(rows)
        except ValidationError as exc:
            found: dict[tuple[int, str], Problem] = {}  # a nullable feature's value fails both union members
            for error in exc.errors():
                row, name = error["loc"][:2]
                found.setdefault((row, name), Problem(field(row, name), error.get("input"), self.expected[name]))
            raise BadRequest(status, list(found.values())) from None

    def _problem(self, error: Any, batch: bool) -> Problem:
        loc = list(error["loc"])
        prefix = f"records[{loc.pop(0)}]" if batch else "record"
        if not loc and error["type"] == "string_unicode":  # a key that is no valid Unicode (a lone surrogate)
            return Problem(
                f"{prefix}.{_key(error['input'])}",
                ABSENT,
                "only the features " + ", ".join(self.features),
                "is unknown",
            )
        if not loc:
            return Problem(prefix, error.get("input"), "a JSON object of features")
        name = str(loc[0])
        field = f"{prefix}.{name}"
        if error["type"] == "missing":
            return Problem(field, ABSENT, self.expected[name], "is missing")
        if error["type"] == "extra_forbidden":
            return Problem(field, error.get("input"), "only the features " + ", ".join(self.features), "is unknown")
        return Problem(field, error.get("input"), self.expected[name])


# A request id a client may send in x-request-id (reused as is, else the server makes one): no ':' (a batch's rows
# are `<request id>:<row>`) and nothing a log line or a header could be abused with.
REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")
RECORD_ID = re.compile(r"[A-Za-z0-9._-]{1,64}(:[0-9]{1,9})?")
FEEDBACK_FIELDS = ("id", "label")


class FeedbackSchema:
    """Validates POST /v1/feedback bodies: one `{"id": ..., "label": ...}` or an array of them; the same
    problems and statuses as a predict request."""

    def __init__(self, settings: Settings) -> None:
        self.labels = (settings.serve.prediction_log.negative_label, settings.data.positive_label)
        self.max_batch = settings.serve.max_batch_records
        self.expected = {
            "id": "a record id as the predict answer's x-request-id header gives it (`<request id>:<row>` for a "
            "batch's row)",
            "label": "one of " + ", ".join(repr(label) for label in self.labels),
        }

    def item_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "id": {"type": "string", "pattern": f"^{RECORD_ID.pattern}$", "description": self.expected["id"]},
                "label": {"type": "string", "enum": list(self.labels), "description": "the true label"},
            },
            "required": list(FEEDBACK_FIELDS),
            "additionalProperties": False,
        }

    def body_schema(self, item_ref: str) -> dict[str, Any]:
        return {
            "oneOf": [
                {"$ref": item_ref},
                {"type": "array", "items": {"$ref": item_ref}, "minItems": 1, "maxItems": self.max_batch},
            ]
        }

    def validate(self, payload: Any) -> list[tuple[str, str]]:
        """(record id, label name) pairs; BadRequest naming every problem found."""
        if isinstance(payload, dict):
            items, prefixes = [payload], ["feedback"]
        elif isinstance(payload, list) and 0 < len(payload) <= self.max_batch:
            items, prefixes = payload, [f"feedback[{i}]" for i in range(len(payload))]
        elif isinstance(payload, list):
            verdict = f"is an array of {len(payload)} items"
            raise BadRequest(422, [Problem("body", ABSENT, f"1 to {self.max_batch} feedback items", verdict)])
        else:
            expected = f'a JSON object {{"id": ..., "label": ...}} or an array of 1 to {self.max_batch} of them'
            raise BadRequest(422, [Problem("body", payload, expected)])
        problems = [
            problem for item, prefix in zip(items, prefixes, strict=True) for problem in self._problems(item, prefix)
        ]
        if problems:
            raise BadRequest(422, problems)
        return [(item["id"], item["label"]) for item in items]

    def _problems(self, item: Any, prefix: str) -> list[Problem]:
        if not isinstance(item, dict):
            return [Problem(prefix, item, 'a JSON object {"id": ..., "label": ...}')]
        problems = [
            Problem(f"{prefix}.{_key(name)}", item[name], "only the fields id and label", "is unknown")
            for name in item
            if name not in FEEDBACK_FIELDS
        ]
        for name in FEEDBACK_FIELDS:
            if name not in item:
                problems.append(Problem(f"{prefix}.{name}", ABSENT, self.expected[name], "is missing"))
        if "id" in item and not (isinstance(item["id"], str) and RECORD_ID.fullmatch(item["id"])):
            problems.append(Problem(f"{prefix}.id", item["id"], self.expected["id"]))
        if "label" in item and item["label"] not in self.labels:
            problems.append(Problem(f"{prefix}.label", item["label"], self.expected["label"]))
        return problems


def parse(body: bytes) -> Any:
    """JSON -> Python. NaN and Infinity are not JSON, but a body using them is parsed leniently so that the
    422 can name the field that holds them."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            raise BadRequest(400, [Problem("body", body[:40], f"valid JSON (parse error: {exc})")]) from None


class Prediction(BaseModel):
    probability: float = Field(description="probability of the positive label")
    label: Literal[0, 1] = Field(description="1 when the probability reaches the decision threshold")


class SinglePrediction(Prediction):
    model_version: str


class BatchPrediction(BaseModel):
    model_version: str
    predictions: list[Prediction]


class ProblemDetail(BaseModel):
    field: str
    value: str | None = Field(description="the value as sent (JSON), null when there is none")
    expected: str


class FeedbackAccepted(BaseModel):
    accepted: int = Field(description="feedback items handed to the prediction log")


class ErrorResponse(BaseModel):
    error: str = Field(description="one sentence naming the field, the value and what was expected")
    problems: list[ProblemDetail] = []
    problem_count: int = 0
