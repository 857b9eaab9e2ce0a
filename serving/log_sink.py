"""``tfxp log-sink``: receives KServe's payload-logger CloudEvents and writes them as request logs.

The real ``tensorflow/serving`` image cannot log requests (a ``logging_config`` stops it at start: "No
request-logger-creator provided", tensorflow/serving#408, #1846). On KServe the InferenceService's
``logger`` sends each request and each response to this sink as a CloudEvent (serving/payload_events.py),
and the sink writes the pairs as ``tensorflow.serving.PredictionLog`` TFRecords under ``--filename_prefix``
with the writer `tfxp serve` logs with (serving/log_writer.py: rotation, disk bound, whole files only;
a gs:// prefix gets them from a local spool, serving/log_shipper.py), so `tfxp drift` reads a cluster's
logs as it reads `tfxp serve`'s (tfxp/request_logs.py).

* Fast answers: KServe's agent does not retry, and a slow sink backs its queue up into inference. An
  event is parsed and answered at once (200, empty body); pairs are built and written by one writer
  thread behind a bounded queue (a pair it cannot take is dropped and counted).
* Pairs by ``Ce-Id``, in either order, in a bounded map: a request whose response does not come within
  ``--pair_timeout_seconds`` (the server answered an error: KServe sends no response then, or the event
  was lost) is dropped and counted, as is a response without its request; so every record has its
  request and its response, as TF Serving's and `tfxp serve`'s. When the map is full the oldest entry goes.
  A second event of the same kind under one id (a client reusing a ``Ce-Id``) replaces the first.
* GET events (status and metadata requests; an empty request body, a reply without ``predictions``,
  ``outputs`` or ``results``) are answered 200 and counted as ignored: TF Serving logs no such request.
* A bad event (an unknown ``Ce-Type``, no ``Ce-Id``, a body that is not TF Serving's JSON) is answered
  400 with one line and counted; the sink keeps going.
* ``GET /healthz`` for probes; Prometheus metrics at serving.metrics.DEFAULT_PATH; SIGTERM (or Ctrl-C)
  stops taking events, writes the pairs it has, counts what is still unpaired and closes the files.
"""
from __future__ import annotations

import argparse
import collections
import logging
import os
import queue
import sys
import tempfile
import threading
import time
from typing import Callable, Mapping, Optional, Tuple

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from serving import payload_events
from serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE, DEFAULT_PATH as METRICS_PATH
from serving.payload_events import REQUEST, Event, EventError
from serving.server import stop_on_signals
from tfxp.errors import TfxpError
from tfxp.files import is_remote
from tfxp.request_logs import SUFFIX

log = logging.getLogger("tfxp.log_sink")

DEFAULT_PORT = 8080
HEALTH_PATH = "/healthz"
MAX_PENDING = 10000               # unpaired events held at once
MAX_EVENT_BYTES = 64 * 1024 * 1024  # as tfxp serve's --max_request_bytes
_SHUTDOWN = object()
_ERROR_LOG_SECONDS = 60           # at most one line per minute about failing writes (a full disk must not flood)


class SinkError(ValueError, TfxpError):
    """A flag the sink cannot start with, or a port it cannot bind: one line."""


class SinkMetrics:
    """The sink's Prometheus series, in a registry of its own."""

    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter("tfxp_log_sink_events", "Events received, by type (request, response, other: an "
                              "unknown Ce-Type).", ["type"], registry=r)
        self.ignored = Counter("tfxp_log_sink_ignored", "Events of no inference (a GET's request or reply), "
                               "answered 200 and not logged.", ["type"], registry=r)
        self.unparsable = Counter("tfxp_log_sink_unparsable", "Events answered 400 (no Ce-Id, an unknown Ce-Type, "
                                  "a body that is not TF Serving's JSON), and pairs that do not match (type pair).",
                                  ["type"], registry=r)
        self.unpaired = Counter("tfxp_log_sink_unpaired", "Events dropped without their other half (timed out, "
                                "replaced, pushed out of a full map, or pending at shutdown), by the half that "
                                "waited.", ["type"], registry=r)
        self.written = Counter("tfxp_log_sink_pairs_written", "PredictionLog records written, by log type.",
                               ["log_type"], registry=r)
        self.dropped = Counter("tfxp_log_sink_pairs_dropped", "Pairs not written: the write queue was full, or "
                               "the writer failed.", ["reason"], registry=r)
        self.pending = Gauge("tfxp_log_sink_pending", "Events waiting for their other half.", registry=r)
        self.uploaded = Counter("tfxp_log_sink_files_uploaded", "Complete files moved to a gs:// prefix.",
                                registry=r)
        self.upload_failures = Counter("tfxp_log_sink_upload_failures", "Uploads that failed (retried later).",
                                       registry=r)

    def page(self) -> bytes:
        return generate_latest(self.registry)


class Pairer:
    """Requests and responses by Ce-Id. ``add`` returns the (request, response) pair an event completes;
    what waits too long (``expire``), is replaced, or is pushed out of a full map goes to ``on_unpaired``.
    Not thread-safe: the sink holds a lock around it."""

    def __init__(self, timeout: float, max_pending: int, on_unpaired: Callable[[Event], None],
                 clock: Callable[[], float] = time.monotonic):
        self.timeout, self.max_pending, self.on_unpaired, self.clock = timeout, max_pending, on_unpaired, clock
        self.pending: "collections.OrderedDict[str, Tuple[Event, float]]" = collections.OrderedDict()

    def add(self, event: Event) -> Optional[Tuple[Event, Event]]:
        waiting = self.pending.pop(event.id, None)
        if waiting is not None:
            other = waiting[0]
            if other.kind != event.kind:
                return (other, event) if other.kind == REQUEST else (event, other)
            self.on_unpaired(other)   # the same id twice: the newer one waits instead
        self.pending[event.id] = (event, self.clock())
        while len(self.pending) > self.max_pending:
            self.on_unpaired(self.pending.popitem(last=False)[1][0])
        return None

    def expire(self) -> None:
        deadline = self.clock() - self.timeout
        while self.pending:
            event, arrived = next(iter(self.pending.values()))
            if arrived > deadline:
                break
            self.pending.popitem(last=False)
            self.on_unpaired(event)

    def drain(self) -> None:
        while self.pending:
            self.on_unpaired(self.pending.popitem(last=False)[1][0])


class LogSink:
    """Events in (``receive``, any thread), PredictionLog records out (``writer.write``, one thread)."""

    def __init__(self, writer, pair_timeout: float, max_pending: int = MAX_PENDING, queue_size: int = 1024,
                 metrics: Optional[SinkMetrics] = None):
        self.writer = writer
        self.metrics = metrics or SinkMetrics()
        self.lock = threading.Lock()
        self.pairer = Pairer(pair_timeout, max_pending, self._unpaired)
        self.queue: "queue.Queue" = queue.Queue(queue_size)
        self.check_seconds = min(1.0, max(pair_timeout / 4, 0.01))
        self.thread = threading.Thread(target=self._write_pairs, name="log-sink-writer", daemon=True)
        self.closed = False
        self._last_error_line = -float("inf")
        self.thread.start()

    def receive(self, headers: Mapping[str, str], body: bytes) -> Optional[str]:
        """One event: None when taken (answer 200), else the one line saying why it was refused (400)."""
        headers = {key.lower(): value for key, value in headers.items()}
        kind = payload_events.EVENT_KINDS.get(headers.get(payload_events.TYPE_HEADER, ""), "other")
        self.metrics.events.labels(kind).inc()
        try:
            event = payload_events.parse_event(headers, body)
        except EventError as e:
            self.metrics.unparsable.labels(e.kind).inc()
            return " ".join(str(e).split())
        if event.half is None:
            self.metrics.ignored.labels(event.kind).inc()
            return None
        with self.lock:
            pair = self.pairer.add(event)
            self.metrics.pending.set(len(self.pairer.pending))
        if pair is not None:
            try:
                self.queue.put_nowait(pair)
            except queue.Full:
                self.metrics.dropped.labels("queue_full").inc()
        return None

    def _unpaired(self, event: Event) -> None:
        self.metrics.unpaired.labels(event.kind).inc()

    def _write_pairs(self) -> None:
        last_check = time.monotonic()
        while True:
            try:
                item = self.queue.get(timeout=self.check_seconds)
            except queue.Empty:
                item = None
            if item is _SHUTDOWN:
                return
            if item is not None:
                self._write(*item)
            if time.monotonic() - last_check >= self.check_seconds:
                last_check = time.monotonic()
                with self.lock:
                    self.pairer.expire()
                    self.metrics.pending.set(len(self.pairer.pending))

    def _write(self, request: Event, response: Event) -> None:
        try:
            record = payload_events.prediction_log(request, response)
        except EventError as e:
            log.warning("log-sink: %s", e)
            self.metrics.unparsable.labels("pair").inc()
            return
        try:
            self.writer.write(record.SerializeToString())
        except Exception as e:  # noqa: BLE001 - a failing disk must not stop the sink
            self.metrics.dropped.labels("error").inc()
            if time.monotonic() - self._last_error_line >= _ERROR_LOG_SECONDS:
                self._last_error_line = time.monotonic()
                log.error("log-sink: cannot write a record: %s (counted in tfxp_log_sink_pairs_dropped_total; next "
                          "such line in %d s at the earliest)", e, _ERROR_LOG_SECONDS)
            return
        self.metrics.written.labels(record.WhichOneof("log_type")).inc()

    def close(self) -> None:
        """Writes the pairs taken, counts what is still unpaired, closes the writer (its last file complete)."""
        if self.closed:
            return
        self.closed = True
        with self.lock:
            left = len(self.pairer.pending)
            self.pairer.drain()
            self.metrics.pending.set(0)
        if left:
            log.info("log-sink: unpaired at shutdown (dropped, counted): %d", left)
        self.queue.put(_SHUTDOWN)
        self.thread.join()
        self.writer.close()


def make_app(sink: LogSink, max_event_bytes: int = MAX_EVENT_BYTES, threads: int = 4) -> FastAPI:
    """The ASGI app: events by POST to any path, GET HEALTH_PATH, GET the metrics."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    limiter = anyio.CapacityLimiter(threads)

    @app.get(HEALTH_PATH)
    async def health() -> Response:
        return PlainTextResponse("ok\n")

    @app.get(METRICS_PATH)
    async def metrics() -> Response:
        return Response(content=sink.metrics.page(), media_type=METRICS_CONTENT_TYPE)

    @app.post("/{path:path}")
    async def event(request: Request) -> Response:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_event_bytes:
                sink.metrics.unparsable.labels(
                    payload_events.EVENT_KINDS.get(request.headers.get(payload_events.TYPE_HEADER, ""), "other")).inc()
                return PlainTextResponse(f"event body larger than {max_event_bytes} bytes (--max_event_bytes)\n",
                                         status_code=413)
            chunks.append(chunk)
        refused = await anyio.to_thread.run_sync(sink.receive, request.headers, b"".join(chunks), limiter=limiter)
        if refused is not None:
            return PlainTextResponse(refused + "\n", status_code=400)
        return Response(status_code=200)

    return app


# -- the command -------------------------------------------------------------------------------------------
def add_log_sink_arguments(parser: argparse.ArgumentParser) -> None:
    from serving.options import PayloadLoggerOptions, RequestLogOptions

    files = RequestLogOptions()   # the request logs' file limits: the same defaults as tfxp serve's
    add = parser.add_argument
    add("--filename_prefix", required=True,
        help=f"where the logs go: <prefix>-<time>-<pid>-<n>{SUFFIX} files (a local path, or gs://...)")
    add("--spool_dir", default=os.path.join(tempfile.gettempdir(), "tfxp-log-sink"),
        help="with a gs:// prefix: where files are written before they are uploaded whole")
    add("--host", default="127.0.0.1", help="address to bind (0.0.0.0 in a pod)")
    add("--port", type=int, default=DEFAULT_PORT, help=f"HTTP port (default {DEFAULT_PORT})")
    add("--max_file_bytes", type=int, default=files.max_file_bytes, help="a file is completed before it would "
        f"grow past this (default {files.max_file_bytes})")
    add("--max_file_seconds", type=float, default=files.max_file_seconds,
        help=f"... or this long after it was opened (default {files.max_file_seconds:g})")
    add("--max_total_bytes", type=int, default=files.max_total_bytes,
        help=f"the prefix's files together (the oldest go first; default {files.max_total_bytes})")
    add("--queue_size", type=int, default=files.queue_size,
        help=f"pairs waiting for the writer; beyond it they are dropped, counted (default {files.queue_size})")
    add("--pair_timeout_seconds", type=float, default=PayloadLoggerOptions().pair_timeout_seconds,
        help="a request whose response has not come by then is dropped and counted, and the reverse")
    add("--max_pending", type=int, default=MAX_PENDING, help="unpaired events held at once (the oldest go first)")
    add("--max_event_bytes", type=int, default=MAX_EVENT_BYTES, help="larger event bodies get 413")


def run_log_sink(args) -> int:
    import uvicorn

    from serving.log_shipper import LogShipper, spool_prefix
    from serving.log_writer import LogWriter

    for name in ("max_pending", "max_event_bytes", "pair_timeout_seconds", "queue_size"):
        if not getattr(args, name) > 0:
            raise SinkError(f"--{name} must be above 0, got {getattr(args, name)}")
    remote = is_remote(args.filename_prefix)
    if remote and not args.filename_prefix.startswith("gs://"):
        raise SinkError(f"--filename_prefix must be a local path or gs://..., got {args.filename_prefix}")
    local = spool_prefix(args.filename_prefix, args.spool_dir) if remote else args.filename_prefix
    try:
        writer = LogWriter(local, args.max_file_bytes, args.max_file_seconds, args.max_total_bytes)
    except ValueError as e:
        raise SinkError(str(e)) from None
    payload_events.preload()
    sink = LogSink(writer, args.pair_timeout_seconds, args.max_pending, args.queue_size)
    shipper = (LogShipper(local, args.filename_prefix, on_shipped=sink.metrics.uploaded.inc,
                          on_failed=sink.metrics.upload_failures.inc) if remote else None)
    config = uvicorn.Config(make_app(sink, args.max_event_bytes), host=args.host, port=args.port,
                            log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=10)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="log-sink-http", daemon=True)
    stop = stop_on_signals("writing what the sink holds", log)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            sink.close()
            if shipper is not None:
                shipper.close()
            raise SinkError(f"cannot bind {args.host}:{args.port}")
        thread.join(0.02)
    print(f"tfxp log-sink: CloudEvents on http://{args.host}:{args.port}/, logs to {args.filename_prefix}-*{SUFFIX}",
          file=sys.stderr, flush=True)
    while not stop.wait(0.5):
        pass
    server.should_exit = True
    thread.join(15)
    sink.close()
    if shipper is not None:
        shipper.close()
    log.info("log-sink stopped")
    return 0

