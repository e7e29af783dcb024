"""Load the exported bundle safely: skops with the trusted types params.yaml lists, the decision policy, and
the metadata, each checked against the settings, and every file against the digest metadata.json recorded at
export. Any problem is one ConveyorError sentence; the app then stays unready rather than answer with a model it
cannot vouch for."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from conveyor import bundle, decision
from conveyor.config import Settings
from conveyor.decision import Decision
from conveyor.errors import ConveyorError, read_json
from conveyor.paths import EXPORTED_METADATA
from conveyor.serve import fast
from conveyor.serve.reference import PipelinePredictor, Record

log = logging.getLogger("conveyor.serve")

METADATA_FILE = EXPORTED_METADATA.name
REQUIRED_METADATA = ("version", "git_commit", "data_version", "metrics", "features")
PROBE_ROWS = 256
WARM_UP_CALLS = 200


class Predictor(Protocol):
    name: str

    def proba(self, records: Sequence[Record]) -> np.ndarray: ...


@dataclass(frozen=True)
class LoadedModel:
    metadata: dict[str, Any]
    decision: Decision  # labels records: `label` for one, `record_labels` for a batch
    predictor: Predictor
    reference: PipelinePredictor
    load_seconds: float

    @property
    def version(self) -> str:
        return str(self.metadata["version"])


def _metadata(folder: Path, settings: Settings) -> dict[str, Any]:
    path = folder / METADATA_FILE
    metadata = read_json(path, "the bundle `conveyor gate` exports")
    if not isinstance(metadata, dict):
        raise ConveyorError(f"{path}: expected a JSON object, got {type(metadata).__name__}.")
    for key in REQUIRED_METADATA:
        if key not in metadata:
            raise ConveyorError(f"{path}: the key {key!r} is missing.")
    expected = {name: f.model_dump() for name, f in settings.data.features.items()}
    for name in sorted(set(expected) | set(metadata["features"])):
        found = metadata["features"].get(name)
        if found != expected.get(name):
            raise ConveyorError(
                f"{path}: feature {name!r} = {found} differs from params.yaml ({expected.get(name)}); "
                "the model was trained on another feature schema."
            )
    return metadata


def probe_records(settings: Settings, rows: int = PROBE_ROWS, seed: int = 0) -> list[Record]:
    """Valid records covering every category (and missing, where allowed) and both ends of each range."""
    rng = np.random.default_rng(seed)
    records: list[Record] = [{} for _ in range(rows)]
    for name, feature in settings.data.features.items():
        if feature.type == "category":
            anchors: list[Any] = [*feature.values] + ([None] if feature.max_null_fraction > 0 else [])
            column = [anchors[int(i)] for i in rng.integers(len(anchors), size=rows)]
        elif feature.type == "int":
            anchors = [int(feature.min), int(feature.max)]
            column = [int(v) for v in rng.integers(anchors[0], anchors[1], endpoint=True, size=rows)]
        else:
            anchors = [feature.min, feature.max]
            column = [float(v) for v in rng.uniform(feature.min, feature.max, size=rows)]
        column[: len(anchors)] = anchors[:rows]
        for record, value in zip(records, column, strict=True):
            record[name] = value
    return records


def choose_predictor(pipeline: Any, reference: PipelinePredictor, settings: Settings) -> Predictor:
    """The fast path if it compiles and equals the Pipeline on the probe records within the tolerance its model
    states (0: bit for bit), else the Pipeline."""
    try:
        candidate = fast.compile_pipeline(pipeline, settings.data.features)
    except fast.Unsupported as exc:
        log.warning("serving with the scikit-learn Pipeline: the fast path does not apply (%s)", exc)
        return reference
    probe = probe_records(settings)
    expected = reference.proba(probe)
    one_by_one = np.concatenate([candidate.proba([record]) for record in probe])
    for got in (one_by_one, candidate.proba(probe)):  # the one-row and the batch code paths
        difference = float(np.max(np.abs(got - expected))) if got.shape == expected.shape else np.inf
        if not difference <= candidate.tolerance:  # NaN fails too
            log.warning(
                "serving with the scikit-learn Pipeline: the fast path differs by up to %.3g on probe records "
                "(tolerance %.3g)",
                difference,
                candidate.tolerance,
            )
            return reference
    return candidate


def warmed(pipeline: Any, reference: PipelinePredictor, settings: Settings) -> Predictor:
    """The predictor chosen for `pipeline`, warmed as the app warms it before it reports ready: single records
    (WARM_UP_CALLS) and one batch past the small-batch path. The latency check times this very step."""
    predictor = choose_predictor(pipeline, reference, settings)
    probe = probe_records(settings, rows=8)
    for i in range(WARM_UP_CALLS):
        predictor.proba(probe[i % len(probe) : i % len(probe) + 1])
    predictor.proba(probe_records(settings, rows=fast.SMALL_BATCH + 1))
    return predictor


def load(folder: Path, settings: Settings) -> LoadedModel:
    """Read, check, compile and warm the model in `folder`; ConveyorError with one sentence on any problem."""
    started = time.perf_counter()
    if not folder.is_dir():
        raise ConveyorError(f"{folder}: the model directory does not exist; set MODEL_DIR to the exported bundle.")
    metadata = _metadata(folder, settings)
    policy = decision.read(folder, settings)
    pipeline = bundle.load(folder, settings)
    reference = PipelinePredictor(pipeline, settings.data.features)
    probe = probe_records(settings, rows=8)
    try:
        classes = [int(c) for c in pipeline.classes_]
        sample = reference.proba(probe)
    except Exception as exc:  # a file that loads but does not predict is as corrupt as one that does not load
        raise ConveyorError(
            f"{folder / bundle.MODEL_FILE}: the model cannot predict ({exc.__class__.__name__}: {exc})."
        ) from None
    if classes != [0, 1] or sample.shape != (len(probe),) or not np.all((sample >= 0) & (sample <= 1)):
        raise ConveyorError(
            f"{folder / bundle.MODEL_FILE}: classes = {classes} is invalid: expected a binary classifier of [0, 1] "
            "returning probabilities."
        )
    # Each file is first checked for what it holds, so a broken one is named for what is wrong with it; then every
    # file must be byte for byte the one the gate exported.
    bundle.verify(folder, metadata, served=(bundle.MODEL_FILE, decision.DECISION_FILE))
    return LoadedModel(
        metadata=metadata,
        decision=policy,
        predictor=warmed(pipeline, reference, settings),
        reference=reference,
        load_seconds=time.perf_counter() - started,
    )
