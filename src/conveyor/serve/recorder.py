"""The prediction log's writer side in `conveyor serve` (docs/monitoring.md): sampled predictions, their shadow
scores and feedback, as `conveyor.predictionlog` records, to rotating JSON Lines files and/or an HTTP collector.

The request path does no more than decide the sample (one draw from a seeded generator) and append one tuple to a
deque, after checking a count against the bound: never a lock, never I/O, never a wait. A full queue drops the
request's records and counts them. A background thread (`prediction-log`) drains the deque, builds the records,
scores the shadow model on them in one batch, and hands them to the sinks: the file sink writes at once; the HTTP
sink queues whole batches (bounded too) for a thread of its own (`prediction-log-http`), so a collector that is
slow or down never holds up the files. Every record handed to the log is written or counted as dropped."""

from __future__ import annotations

import logging
import os
import random
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Sequence
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from queue import Empty, Full, Queue
from typing import IO, Any, Protocol

from conveyor import predictionlog
from conveyor.config import PredictionLogSettings
from conveyor.errors import ConveyorError
from conveyor.predictionlog import Feedback, Prediction, Record
from conveyor.serve.loading import LoadedModel
from conveyor.serve.metrics import Metrics

log = logging.getLogger("conveyor.serve")

DRAIN_RECORDS = 250  # records the writer takes from the queue at once (one shadow batch, one file write)
POLL_SECONDS = 0.05  # the writer drains the queue this often
CLOSE_SECONDS = 5.0  # at shutdown, how long the sinks may take to write what is left
NOT_RETRIED = frozenset(range(400, 500)) - {408, 429}  # a collector refusing the batch itself: trying again won't help


def stamp(seconds: float) -> str:
    """A record's time from a Unix time, as `predictionlog.now()` writes it."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def host() -> str:
    """This pod's name (or host name), as file names and CloudEvents sources may carry it."""
    return re.sub(r"[^A-Za-z0-9.-]+", "-", socket.gethostname()) or "serve"


class Sink(Protocol):
    name: str

    def start(self) -> None: ...

    def put(self, records: list[Record]) -> None: ...

    def close(self, deadline: float) -> None: ...


class FileSink:
    """JSON Lines files named by the UTC time they were started (`20261202T060301.123456Z-<host>.jsonl`, so names
    sort by time), each closed past `file_max_bytes` or `file_max_age_s`. When a file is started, the oldest
    `*.jsonl` files of the folder are deleted until the closed ones and a full new one fit in `total_max_bytes`."""

    name = "file"

    def __init__(self, folder: Path, settings: PredictionLogSettings, metrics: Metrics) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConveyorError(f"prediction log folder {folder}: cannot be created ({exc.strerror}).") from None
        if not os.access(folder, os.W_OK | os.X_OK):
            raise ConveyorError(f"prediction log folder {folder}: not writable by this process.")
        self.folder, self.settings, self.metrics = folder, settings, metrics
        self.suffix = f"-{host()}{predictionlog.LOG_SUFFIX}"
        self._file: IO[bytes] | None = None
        self._size = 0
        self._opened = 0.0
        self._failing = False

    def start(self) -> None:
        """Nothing to start: files are written by the recorder's thread, and opened at the first record."""

    def put(self, records: list[Record]) -> None:
        lines = [predictionlog.encode(record) for record in records]
        try:
            self._write(lines)
        except OSError as exc:
            self._close_file()
            self.metrics.log_dropped("sink_error", len(records))
            if not self._failing:
                log.warning("prediction log: cannot write to %s (%s); dropping records until it can", self.folder, exc)
            self._failing = True
            return
        if self._failing:
            log.info("prediction log: writing to %s again", self.folder)
            self._failing = False
        self.metrics.log_written(self.name, len(records))

    def _write(self, lines: list[bytes]) -> None:
        """Whole lines only: a file is closed before a line that would take it past its size."""
        limit = self.settings.file_max_bytes
        if self._file is not None and time.monotonic() - self._opened > self.settings.file_max_age_s:
            self._close_file()
        start = 0
        for end, line in enumerate(lines):
            if self._file is not None and self._size + len(line) > limit:
                self._flush(lines[start:end])
                self._close_file()
                start = end
            if self._file is None:
                self._open()
            self._size += len(line)
        self._flush(lines[start:])

    def _flush(self, lines: list[bytes]) -> None:
        if lines and self._file is not None:
            self._file.write(b"".join(lines))
            self._file.flush()

    def _open(self) -> None:
        self._make_room()
        name = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ") + self.suffix
        self._file = (self.folder / name).open("ab")
        self._size, self._opened = 0, time.monotonic()

    def _make_room(self) -> None:
        files = [(path, path.stat().st_size) for path in sorted(self.folder.glob(f"*{predictionlog.LOG_SUFFIX}"))]
        total = sum(size for _, size in files)
        deleted = freed = 0
        for path, size in files:
            if total + self.settings.file_max_bytes <= self.settings.total_max_bytes:
                break
            path.unlink(missing_ok=True)  # another replica sharing the folder may have deleted it first
            total -= size
            deleted, freed = deleted + 1, freed + size
        if deleted:
            self.metrics.log_deleted(deleted, freed)

    def _close_file(self) -> None:
        if self._file is not None:
            with suppress(OSError):  # what it held is counted already: written, or dropped when its write failed
                self._file.close()
            self._file = None

    def close(self, deadline: float) -> None:
        self._close_file()


class HttpSink:
    """POSTs batches of records as CloudEvents (`predictionlog.to_cloudevents`) from a thread of its own. At most
    `http_queue_batches` batches wait; more are dropped (`queue_full`). A batch that still fails after
    `http_retries` retries, or that the collector refuses with a 4xx, is dropped (`sink_error`)."""

    name = "http"

    def __init__(self, url: str, settings: PredictionLogSettings, metrics: Metrics, model: str) -> None:
        self.url, self.settings, self.metrics, self.model = url, settings, metrics, model
        self.source = f"/conveyor/serve/{host()}"
        self._batches: Queue[list[Record]] = Queue(maxsize=settings.http_queue_batches)
        self._closing = threading.Event()
        self._deadline = float("inf")
        self._failing = False
        self._thread = threading.Thread(target=self._run, name="prediction-log-http", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, records: list[Record]) -> None:
        size = self.settings.http_batch_records
        for start in range(0, len(records), size):
            batch = records[start : start + size]
            try:
                self._batches.put_nowait(batch)
            except Full:
                self.metrics.log_dropped("queue_full", len(batch))

    def _run(self) -> None:
        while True:
            try:
                batch = self._batches.get(timeout=POLL_SECONDS)
            except Empty:
                if self._closing.is_set():
                    return
                continue
            if time.monotonic() > self._deadline:
                self.metrics.log_dropped("sink_error", len(batch))
            else:
                self._send(batch)

    def _send(self, batch: list[Record]) -> None:
        body = predictionlog.to_cloudevents(batch, source=self.source, model=self.model)
        headers = {"Content-Type": predictionlog.CLOUDEVENTS_BATCH}
        error = ""
        for attempt in range(self.settings.http_retries + 1):
            if attempt and self._closing.wait(self.settings.http_backoff_s * 2 ** (attempt - 1)):
                break  # shutting down: one attempt per batch left
            # The URL is checked to be http(s) (PredictionLogSettings), so no file: or custom scheme is opened.
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")  # noqa: S310
            try:
                with urllib.request.urlopen(request, timeout=self.settings.http_timeout_s) as response:  # noqa: S310
                    response.read()
            except urllib.error.HTTPError as exc:
                error = f"HTTP {exc.code}"
                if exc.code in NOT_RETRIED:
                    break
                continue
            except (OSError, ValueError) as exc:  # refused, reset, timed out, a bad answer
                error = str(exc) or exc.__class__.__name__
                continue
            self.metrics.log_written(self.name, len(batch))
            if self._failing:
                log.info("prediction log: %s accepts batches again", self.url)
                self._failing = False
            return
        self.metrics.log_dropped("sink_error", len(batch))
        if not self._failing:
            log.warning("prediction log: %s failed (%s); dropping batches until it accepts one", self.url, error)
        self._failing = True

    def close(self, deadline: float) -> None:
        """Send what waits until `deadline` (monotonic), one attempt per batch; drop the rest, counted."""
        self._deadline = deadline
        self._closing.set()
        if self._thread.is_alive():
            self._thread.join(timeout=max(0.0, deadline - time.monotonic()) + self.settings.http_timeout_s)
        elif self._thread.ident is None:  # never started: send what waits from here
            self._run()


class Recorder:
    """The prediction log of one server: `sampled()` and `offer()` on the request path, `feedback()` for
    POST /v1/feedback, and the background writer. `shadow`, once set, is scored on every sampled record.

    Predictions may fill the queue to `queue_records`; feedback may use `feedback_reserve` records more, so that a
    queue full of droppable sampled predictions never turns away true labels, which are scarce."""

    def __init__(
        self,
        settings: PredictionLogSettings,
        labels: tuple[str, str],
        metrics: Metrics,
        sinks: Sequence[Sink],
        seed: int | None = None,
        feedback_reserve: int = 0,
    ) -> None:
        self.settings, self.labels, self.metrics, self.sinks = settings, labels, metrics, list(sinks)
        self.shadow: LoadedModel | None = None
        self.bound = settings.queue_records
        self.feedback_bound = settings.queue_records + feedback_reserve
        self._random = random.Random(seed).random  # noqa: S311 (sampling, not secrecy)
        self._sample = settings.sample
        self._excluded = frozenset(settings.exclude)
        self._queue: deque[tuple[Any, ...]] = deque()
        self._offered = 0  # records appended, by the event loop only
        self._taken = 0  # records taken, by the writer only: the difference is what waits
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)

    @classmethod
    def configured(
        cls, settings: PredictionLogSettings, labels: tuple[str, str], metrics: Metrics, model: str, reserve: int
    ) -> Recorder:
        """The recorder with the sinks `settings` name (at least one: see `PredictionLogSettings.on`) and `reserve`
        records of room for feedback only."""
        sinks: list[Sink] = []
        if settings.dir is not None:
            sinks.append(FileSink(settings.dir, settings, metrics))
        if settings.url is not None:
            sinks.append(HttpSink(settings.url, settings, metrics, model))
        return cls(settings, labels, metrics, sinks, feedback_reserve=reserve)

    @property
    def waiting(self) -> int:
        """Records in the queue (an upper bound, read from the event loop)."""
        return self._offered - self._taken

    def sampled(self) -> bool:
        return self._random() < self._sample

    def offer(
        self,
        request_id: str,
        version: str,
        records: list[dict[str, Any]],
        scores: list[float],
        labels: list[int],
        single: bool,
    ) -> None:
        """A sampled predict request: its records (as validated), scores and 0/1 labels. The records' ids are the
        request id for a single record, `<request id>:<row>` for a batch's rows (`predictionlog.row_id`)."""
        count = len(records)
        shadow = self.shadow
        if self._offered - self._taken + count > self.bound:
            self.metrics.log_refused(count * (2 if shadow is not None else 1) * len(self.sinks))
        else:
            self._offered += count
            self._queue.append((request_id, time.time(), version, records, scores, labels, single, shadow))
        self.metrics.log_offered(count, shadow is not None)

    def feedback(self, items: list[tuple[str, str]]) -> bool:
        """Feedback (record id, label name): all queued, or none when they do not fit (False)."""
        count = len(items)
        if self._offered - self._taken + count > self.feedback_bound:
            return False
        self._offered += count
        when = predictionlog.now()
        self._queue.append(([Feedback(id=i, time=when, label=label) for i, label in items],))
        self.metrics.feedback_received(count)
        return True

    def start(self) -> None:
        for sink in self.sinks:
            sink.start()
        self._thread.start()

    def close(self, seconds: float = CLOSE_SECONDS) -> None:
        """Write what waits, then close the sinks; at most about `seconds`."""
        deadline = time.monotonic() + seconds
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=seconds)
        else:
            self.drain()
        for sink in self.sinks:
            sink.close(deadline)

    def _run(self) -> None:
        # A fixed pace rather than draining as soon as records arrive: at full load a tight loop would write a few
        # records at a time (a syscall each) and contend for the GIL with the event loop all the time.
        while not self._stop.wait(POLL_SECONDS):
            self.drain()
        self.drain()

    def drain(self) -> int:
        """Write everything the queue holds, DRAIN_RECORDS at a time; the number of records written."""
        done = 0
        while self._queue:
            items, count = [], 0
            while self._queue and count < DRAIN_RECORDS:
                item = self._queue.popleft()
                items.append(item)
                count += len(item[0]) if len(item) == 1 else len(item[3])
            self._taken += count
            # A bug below must cost log records, counted, never the writer thread (and with it the queue).
            try:
                records = self._records(items)
            except Exception:
                lost = sum(
                    len(item[0]) if len(item) == 1 else len(item[3]) * (1 + (item[7] is not None)) for item in items
                )
                log.exception("prediction log: %d records could not be made; they are dropped", lost)
                self.metrics.log_dropped("sink_error", lost * len(self.sinks))
                continue
            for sink in self.sinks:
                try:
                    sink.put(records)
                except Exception:
                    log.exception("prediction log: the %s sink failed on %d records", sink.name, len(records))
                    self.metrics.log_dropped("sink_error", len(records))
            done += count
            # Hand the GIL to the event loop between chunks (about a millisecond each): holding it until the
            # interpreter forces a switch (5 ms) stretches the tail latency of requests at high sampling.
            time.sleep(0)
        return done

    def _records(self, items: list[tuple[Any, ...]]) -> list[Record]:
        records: list[Record] = []
        scored: list[tuple[LoadedModel, str, str, dict[str, Any]]] = []
        for item in items:
            if len(item) == 1:
                records.extend(item[0])
                continue
            request_id, seconds, version, rows, scores, labels, single, shadow = item
            when = stamp(seconds)
            for row, (features, score, label) in enumerate(zip(rows, scores, labels, strict=True)):
                record_id = predictionlog.row_id(request_id, None if single else row)
                records.append(
                    Prediction(
                        record_id, when, version, predictionlog.PRIMARY, self._kept(features), score, self.labels[label]
                    )
                )
                if shadow is not None:
                    scored.append((shadow, record_id, when, features))
        if scored:
            records.extend(self._shadow_records(scored))
        return records

    def _kept(self, features: dict[str, Any]) -> dict[str, Any]:
        if not self._excluded:
            return features
        return {name: value for name, value in features.items() if name not in self._excluded}

    def _shadow_records(self, scored: list[tuple[LoadedModel, str, str, dict[str, Any]]]) -> list[Record]:
        """The shadow's predictions for these records, in one batch (one shadow is ever loaded)."""
        shadow = scored[0][0]
        rows = [features for _, _, _, features in scored]
        try:
            proba = shadow.predictor.proba(rows)
            labels = shadow.decision.record_labels(rows, proba).tolist()
        except Exception:  # checked at load like the primary; should it still fail, the primary must not notice
            log.exception("prediction log: the shadow model failed on %d records; they are dropped", len(rows))
            self.metrics.log_dropped("sink_error", len(rows) * len(self.sinks))
            return []
        scores = proba.tolist()
        self.metrics.observe_shadow_scores(scores)
        return [
            Prediction(record_id, when, shadow.version, predictionlog.SHADOW, self._kept(features), p, self.labels[y])
            for (_, record_id, when, features), p, y in zip(scored, scores, labels, strict=True)
        ]
