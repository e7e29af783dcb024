"""The prediction log's records: what `conveyor serve` writes for a sampled prediction (and its shadow's), what
`POST /v1/feedback` writes for a true label, and what `conveyor monitor` reads back. One JSON object per line in
`*.jsonl` files under one folder; a record names its kind, so predictions and feedback share the files.

The same records travel over HTTP as CloudEvents (batched structured mode), with the attributes KServe's payload
logger sets, so a collector that takes KServe's events takes these too (docs/monitoring.md)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson

from conveyor.errors import ConveyorError

PREDICTION = "prediction"
FEEDBACK = "feedback"
PRIMARY = "primary"
SHADOW = "shadow"
Role = Literal["primary", "shadow"]

# The response header that carries the request id; a batch's rows are `<id>:<row>` (see `row_id`).
REQUEST_ID_HEADER = "x-request-id"
LOG_SUFFIX = ".jsonl"
# CloudEvents: the batched structured content mode; one event per record. KServe's logger sends
# org.kubeflow.serving.inference.{request,response}; a prediction record is the response (it carries the inputs).
CLOUDEVENTS_BATCH = "application/cloudevents-batch+json"
EVENT_TYPES = {PREDICTION: "org.kubeflow.serving.inference.response", FEEDBACK: "io.conveyor.feedback"}


def now() -> str:
    """The time a record is stamped with: UTC, ISO 8601 with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def row_id(request_id: str, row: int | None) -> str:
    """A record's id: the request id for a single record, `<request id>:<row>` for a batch's row."""
    return request_id if row is None else f"{request_id}:{row}"


@dataclass(frozen=True)
class Prediction:
    id: str
    time: str
    version: str
    role: Role
    features: dict[str, Any]
    probability: float
    label: str
    kind: str = PREDICTION


@dataclass(frozen=True)
class Feedback:
    id: str
    time: str
    label: str
    kind: str = FEEDBACK


Record = Prediction | Feedback


def encode(record: Record) -> bytes:
    """One log line, newline included. orjson writes a dataclass's fields in order itself, as `asdict` would, at
    a hundredth of its cost (asdict deep-copies the features): the server encodes every logged record."""
    return orjson.dumps(record) + b"\n"


def _field(raw: Mapping[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = raw.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ConveyorError(f"{where}: field {name!r} is {value!r}, expected a {_names(kind)}.")
    return value


def _names(kind: type | tuple[type, ...]) -> str:
    if kind == (int, float):
        return "number"
    return {str: "string", dict: "JSON object"}[kind]


def decode(raw: Mapping[str, Any], where: str = "prediction log") -> Record:
    """A record from its JSON object; a ConveyorError naming the field for anything else."""
    kind = raw.get("kind")
    if kind == FEEDBACK:
        return Feedback(
            id=_field(raw, "id", str, where),
            time=_field(raw, "time", str, where),
            label=_field(raw, "label", str, where),
        )
    if kind != PREDICTION:
        raise ConveyorError(f"{where}: field 'kind' is {kind!r}, expected {PREDICTION!r} or {FEEDBACK!r}.")
    role = raw.get("role")
    if role not in (PRIMARY, SHADOW):
        raise ConveyorError(f"{where}: field 'role' is {role!r}, expected {PRIMARY!r} or {SHADOW!r}.")
    return Prediction(
        id=_field(raw, "id", str, where),
        time=_field(raw, "time", str, where),
        version=_field(raw, "version", str, where),
        role=role,
        features=_field(raw, "features", dict, where),
        probability=float(_field(raw, "probability", (int, float), where)),
        label=_field(raw, "label", str, where),
    )


def files(folder: Path) -> list[Path]:
    """The log's files, oldest first (rotated files carry their start time in the name, so names sort by time)."""
    return sorted(folder.rglob(f"*{LOG_SUFFIX}"))


def read(folder: Path) -> Iterator[Record]:
    """Every record under `folder`. A line cut short by a writer that died mid-line is skipped (the writer appends
    whole lines, so only the last line of a file can be cut); any other bad line is an error naming file and line."""
    for path in files(folder):
        lines = path.read_bytes().split(b"\n")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                raw = orjson.loads(line)
            except orjson.JSONDecodeError:
                if number == len(lines):
                    continue
                raise ConveyorError(
                    f"{path.name} line {number}: not a JSON object, expected one record a line."
                ) from None
            if not isinstance(raw, dict):
                raise ConveyorError(f"{path.name} line {number}: {raw!r} is not a JSON object, expected a record.")
            yield decode(raw, where=f"{path.name} line {number}")


def to_cloudevents(records: Iterable[Record], source: str, model: str) -> bytes:
    """A batch of records as CloudEvents in batched structured mode (`CLOUDEVENTS_BATCH`)."""
    return orjson.dumps(
        [
            {
                "specversion": "1.0",
                "id": record.id if record.kind == FEEDBACK else f"{record.id}/{record.role}",
                "source": source,
                "type": EVENT_TYPES[record.kind],
                "time": record.time,
                "datacontenttype": "application/json",
                "inferenceservicename": model,
                "component": getattr(record, "role", PRIMARY),
                "data": record,  # orjson writes the dataclass as `asdict` would, without copying it
            }
            for record in records
        ]
    )


def from_cloudevents(body: bytes) -> list[Record]:
    """The records of a CloudEvents batch made by `to_cloudevents`; a ConveyorError naming what is wrong."""
    try:
        events = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ConveyorError(f"The CloudEvents batch is not JSON ({exc}), expected an array of events.") from None
    if not isinstance(events, list):
        raise ConveyorError(f"The CloudEvents batch is a {type(events).__name__}, expected an array of events.")
    records = []
    for index, event in enumerate(events):
        data = event.get("data") if isinstance(event, dict) else None
        if not isinstance(data, dict):
            raise ConveyorError(f"CloudEvent {index}: field 'data' is {data!r}, expected a record object.")
        records.append(decode(data, where=f"CloudEvent {index}"))
    return records
