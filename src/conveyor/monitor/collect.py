"""`conveyor monitor collect`: a small HTTP collector that appends the prediction log to a folder (in a cluster,
a PersistentVolumeClaim the monitor CronJob mounts too), so the log outlives the API's pods and gathers every
replica's records in one place.

It takes two forms of POST, to any path:
- the batches `conveyor serve` sends: `Content-Type: application/cloudevents-batch+json`
  (conveyor.predictionlog.to_cloudevents); each event's record is appended as one JSON line;
- KServe's payload logger: one event in CloudEvents binary mode, its attributes in `Ce-*` headers (`Ce-Id`,
  `Ce-Type`, `Ce-Source`, `Ce-Specversion`, and KServe's extensions `Ce-Inferenceservicename`, `Ce-Component`,
  `Ce-Endpoint`, `Ce-Namespace`, `Ce-Metadata`), the payload as the body (kserve/kserve, pkg/logger/worker.go,
  `sendHttpCloudEvent` with `cloudevents.WithEncodingBinary`). A body that is one of our records is appended
  like the batches'; any other (KServe's own inference request or response) is kept raw, with its attributes,
  in `*.events` files beside the log, which `conveyor monitor` does not read.

Durability: each POST's lines are written, flushed and fsync'ed before the 200, so an acknowledged batch survives
a pod or node restart; a file is closed when it reaches --max-file-bytes and a new one begins, and then the oldest
files go while the folder holds over --max-total-bytes of that kind (the volume never fills). Each process writes
its own files (start time, host name and pid in the name), so replicas on a ReadWriteMany volume never share one.
Errors: 400 (a body that is not what its Content-Type says), 413 (over --max-body-bytes), 415 (another
Content-Type), 503 (the volume refused the write: full, or gone), each with one sentence in `{"error": ...}`."""

from __future__ import annotations

import os
import socket
import threading
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import orjson

from conveyor import predictionlog
from conveyor.errors import ConveyorError

JSON = "application/json"
RAW_SUFFIX = ".events"
BINARY_REQUIRED = ("ce-id", "ce-type", "ce-source", "ce-specversion")


class Sink:
    """Appends lines to the current file of one kind (`.jsonl` records, `.events` raw events), rotating by size;
    at each rotation the oldest files of that kind go while the kind's total is over `max_total_bytes`."""

    def __init__(self, folder: Path, suffix: str, max_file_bytes: int, max_total_bytes: int) -> None:
        self.folder, self.suffix = folder, suffix
        self.max_file_bytes, self.max_total_bytes = max_file_bytes, max_total_bytes
        self._file: IO[bytes] | None = None
        self._lock = threading.Lock()

    def _open(self) -> IO[bytes]:
        started = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        host = socket.gethostname().replace(os.sep, "-")
        return (self.folder / f"{started}-{host}-{os.getpid()}{self.suffix}").open("ab")

    def append(self, lines: list[bytes]) -> None:
        with self._lock:
            if self._file is None:
                self._file = self._open()
            self._file.write(b"".join(lines))
            self._file.flush()
            os.fsync(self._file.fileno())
            if self._file.tell() >= self.max_file_bytes:
                self._file.close()
                self._file = None
                self._prune()

    def _prune(self) -> None:
        """Remove the oldest files (names sort by start time) until the total fits; the newest always stays."""
        files = sorted(self.folder.glob(f"*{self.suffix}"))
        total = sum(f.stat().st_size for f in files)
        for old in files[:-1]:
            if total <= self.max_total_bytes:
                break
            total -= old.stat().st_size
            old.unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class Collector(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], folder: Path, max_body_bytes: int, max_file_bytes: int, max_total_bytes: int
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.records = Sink(folder, predictionlog.LOG_SUFFIX, max_file_bytes, max_total_bytes)
        self.raw = Sink(folder, RAW_SUFFIX, max_file_bytes, max_total_bytes)
        self.max_body_bytes = max_body_bytes
        super().__init__(address, Handler)

    def server_close(self) -> None:
        super().server_close()
        self.records.close()
        self.raw.close()


class Refused(Exception):
    def __init__(self, status: HTTPStatus, sentence: str) -> None:
        super().__init__(sentence)
        self.status, self.sentence = status, sentence


class Handler(BaseHTTPRequestHandler):
    server: Collector
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # one line per request on stderr, no body
        if args and str(args[1]) != "200":
            super().log_message(format, *args)

    def do_GET(self) -> None:
        if self.path in ("/healthz", "/readyz"):
            self._answer(HTTPStatus.OK, {"status": "ok"})
        else:
            self._answer(HTTPStatus.NOT_FOUND, {"error": f"{self.path} is not a route; POST events to any path."})

    def do_POST(self) -> None:
        try:
            body = self._body()
            kind = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if kind == predictionlog.CLOUDEVENTS_BATCH:
                stored = self._batch(body)
            elif kind == JSON and all(self.headers.get(h) for h in BINARY_REQUIRED):
                stored = self._binary(body)
            else:
                raise Refused(
                    HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                    f"Content-Type {kind or '(none)'!r} is not accepted; expected {predictionlog.CLOUDEVENTS_BATCH} "
                    f"or {JSON} with Ce-Id, Ce-Type, Ce-Source and Ce-Specversion headers.",
                )
        except Refused as refused:
            self._answer(refused.status, {"error": refused.sentence})
            return
        except OSError as exc:  # a full or lost volume: the sender keeps its batch and retries
            sentence = (
                f"the log folder refused the write ({exc.strerror or exc}); nothing of this body is acknowledged."
            )
            self._answer(HTTPStatus.SERVICE_UNAVAILABLE, {"error": sentence})
            return
        self._answer(HTTPStatus.OK, {"stored": stored})

    def _body(self) -> bytes:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self.close_connection = True
            raise Refused(HTTPStatus.BAD_REQUEST, f"Content-Length is {length!r}; expected the body's size in bytes.")
        if int(length) > self.server.max_body_bytes:
            self.close_connection = True  # the body is not read: the connection cannot be reused
            raise Refused(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"the body has {length} bytes, over the limit of {self.server.max_body_bytes}; send smaller batches.",
            )
        return self.rfile.read(int(length))

    def _batch(self, body: bytes) -> int:
        try:
            records = predictionlog.from_cloudevents(body)
        except ConveyorError as exc:
            raise Refused(HTTPStatus.BAD_REQUEST, str(exc)) from None
        self.server.records.append([predictionlog.encode(r) for r in records])
        return len(records)

    def _binary(self, body: bytes) -> int:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise Refused(HTTPStatus.BAD_REQUEST, "the event's body is not JSON; expected a JSON payload.") from None
        if isinstance(data, dict) and data.get("kind") in (predictionlog.PREDICTION, predictionlog.FEEDBACK):
            try:
                record = predictionlog.decode(data, where=f"CloudEvent {self.headers['ce-id']}")
            except ConveyorError as exc:
                raise Refused(HTTPStatus.BAD_REQUEST, str(exc)) from None
            self.server.records.append([predictionlog.encode(record)])
        else:
            attributes = {k.lower(): v for k, v in self.headers.items() if k.lower().startswith("ce-")}
            self.server.raw.append([orjson.dumps({"attributes": attributes, "data": data}) + b"\n"])
        return 1

    def _answer(self, status: HTTPStatus, payload: dict[str, Any]) -> None:
        body = orjson.dumps(payload)
        self.send_response(status)
        self.send_header("Content-Type", JSON)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)


def serve(folder: Path, host: str, port: int, max_body_bytes: int, max_file_bytes: int, max_total_bytes: int) -> None:
    """Run until interrupted (SIGTERM or Ctrl-C), then close the open files."""
    server = Collector((host, port), folder, max_body_bytes, max_file_bytes, max_total_bytes)
    print(f"collecting into {folder} on http://{host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
