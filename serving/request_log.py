"""Request logging, configured as TF Serving configures it: each model's ``logging_config`` in the
ModelServerConfig (``ModelConfig.logging_config = 6``), re-applied on every config reload::

    logging_config {
      sampling_config { sampling_rate: 0.1 }
      log_collector_config { type: "tfrecord" filename_prefix: "/var/log/tfxp/chicago_taxi" }
    }

TF Serving's open-source server has no log collector and fails at start on any logging_config ("No
request-logger-creator provided"); this server has one collector type, ``tfrecord``: every sampled successful
Predict, Classify and Regress, over REST or gRPC, becomes a ``tensorflow.serving.PredictionLog`` (log_metadata:
the response's model spec, the sampling config, the tags ["serve"], the time; the request and the response)
in TFRecord files under ``filename_prefix`` (serving/log_writer.py: rotated, bounded on disk).

* As TF Serving's ServerRequestLogger: one logger per model name (every version and label of it), sampled
  per request with a uniform draw (rate 0 never, 1 always); a model without logging_config logs nothing.
* The request path only samples and enqueues (``put_nowait``); one thread per filename_prefix, waking every
  DRAIN_SECONDS, builds each PredictionLog (for REST, its request and response protos from what the REST handler parsed) and writes it.
  A full queue drops the record, a failed write loses it: both are counted and logged, never the request's
  concern. ``close()`` (SIGTERM) writes what is queued and completes the files.
* Metrics: TF Serving's ``:tensorflow:serving:request_log_count{model_name,status_code}`` per record (OK
  written, RESOURCE_EXHAUSTED dropped, INTERNAL failed) and ``tfxp_serving_request_log_dropped_total{model,reason}``.
"""
from __future__ import annotations

import logging
import queue
import random
import threading
import time
from typing import Callable, Dict, NamedTuple, Optional

from serving import errors, inference
from serving.log_writer import LogWriter, location_problem
from serving.metrics import Metrics
from serving.options import RequestLogOptions, check_filename_prefix
from serving.servable import SERVE_TAG

log = logging.getLogger(__name__)

TFRECORD = "tfrecord"
COLLECTOR_TYPES = (TFRECORD,)
# PredictionLog's log_type of each API this server logs.
PREDICT, CLASSIFY, REGRESS = "predict_log", "classify_log", "regress_log"
# The writer thread wakes this often and writes everything queued, rather than once per request: each wake-up
# takes the GIL from the threads answering requests (measured: bench.serving_bench's request logging cells).
DRAIN_SECONDS = 0.02
_ERROR_LOG_SECONDS = 60  # at most one error line per logger this often (a full disk must not flood the log)


def check_logging_config(model_name: str, logging_config) -> None:
    """Raises ServingError, one line naming the model and the field, for a logging_config this server cannot
    apply (an unknown type: TF Serving's own NotFound message)."""
    collector = logging_config.log_collector_config
    if collector.type not in COLLECTOR_TYPES:
        raise errors.not_found(f"model {model_name}: logging_config: Cannot find LogCollector::Factory for type: "
                               f"{collector.type} (tfxp serve has: {', '.join(COLLECTOR_TYPES)})")
    rate = logging_config.sampling_config.sampling_rate
    if not 0.0 <= rate <= 1.0:
        raise errors.invalid_argument(f"model {model_name}: logging_config.sampling_config.sampling_rate must be in "
                                      f"[0, 1], got {rate}")
    try:
        check_filename_prefix(collector.filename_prefix, "logging_config.log_collector_config.filename_prefix")
    except ValueError as e:
        raise errors.invalid_argument(f"model {model_name}: {e}") from None
    problem = location_problem(collector.filename_prefix)
    if problem:
        raise errors.failed_precondition(f"model {model_name}: cannot log requests under "
                                         f"{collector.filename_prefix}: {problem}")


def check_model_server_config(config) -> None:
    for model in config.model_config_list.config:
        if model.HasField("logging_config"):
            check_logging_config(model.name, model.logging_config)


class _Entry(NamedTuple):
    model: str
    sampling_config: object
    timestamp: int
    kind: str
    build: Callable  # build(*args) -> (request, response) protos
    args: tuple


class RequestLogger:
    """One log collector (one filename_prefix): a bounded queue and the thread that writes what it holds."""

    def __init__(self, filename_prefix: str, options: RequestLogOptions, metrics: Metrics):
        self.filename_prefix = filename_prefix
        self.metrics = metrics
        self.writer = LogWriter(filename_prefix, options.max_file_bytes, options.max_file_seconds,
                                options.max_total_bytes)
        self._queue: queue.Queue = queue.Queue(options.queue_size)
        self._gate = threading.Lock()  # offer() against close(): nothing is enqueued after the last drain
        self._closed = False
        self._stop = threading.Event()
        self._last_error_line = 0.0
        self._thread = threading.Thread(target=self._run, name=f"request-log {filename_prefix}", daemon=True)
        self._thread.start()

    def offer(self, entry: _Entry) -> None:
        """The request path: enqueue without waiting; a full queue drops the record, counted."""
        with self._gate:
            if not self._closed:
                try:
                    self._queue.put_nowait(entry)
                    return
                except queue.Full:
                    pass
        self._count_dropped(entry.model, "queue_full" if not self._closed else "stopped")

    def _count_dropped(self, model: str, reason: str) -> None:
        self.metrics.request_log_dropped(model, reason)
        self.metrics.request_logged(model, errors.Code.RESOURCE_EXHAUSTED.name)

    def _run(self) -> None:
        while not self._stop.wait(DRAIN_SECONDS):
            self._drain()

    def _drain(self) -> None:
        while True:
            try:
                entry = self._queue.get_nowait()
            except queue.Empty:
                return
            self._write(entry)
            time.sleep(0)  # lets a request thread waiting for the GIL have it now, not after the switch interval

    def _write(self, entry: _Entry) -> None:
        try:
            self.writer.write(prediction_log(entry).SerializeToString())
        except Exception as e:  # noqa: BLE001 - a log that cannot be written never reaches the request
            self.metrics.request_log_dropped(entry.model, "error")
            self.metrics.request_logged(entry.model, errors.Code.INTERNAL.name)
            now = time.monotonic()
            if now - self._last_error_line >= _ERROR_LOG_SECONDS:
                self._last_error_line = now
                log.error("request log %s: cannot write a record of model %s: %s (counted in "
                          "tfxp_serving_request_log_dropped_total; next such line in %d s at the earliest)",
                          self.filename_prefix, entry.model, e, _ERROR_LOG_SECONDS)
            return
        self.metrics.request_logged(entry.model, errors.Code.OK.name)

    def close(self) -> None:
        """Writes every record queued so far, then completes the current file."""
        self._stop.set()
        self._thread.join()
        with self._gate:
            self._closed = True
        self._drain()
        self.writer.close()


def prediction_log(entry: _Entry):
    """The PredictionLog of one sampled request."""
    request, response = entry.build(*entry.args)
    return log_record(entry.kind, request, response, entry.sampling_config, entry.timestamp)


def log_record(kind: str, request, response, sampling_config, timestamp_secs: int):
    """A PredictionLog (``kind``: PREDICT, CLASSIFY or REGRESS) of a request and its response, with TF Serving's
    RequestLogger::Log metadata: the response's model spec, the sampling config, the tags, the time. Every
    writer of request logs builds its records here: `tfxp serve`'s loggers and `tfxp log-sink`
    (serving/payload_events.py)."""
    from tensorflow_serving.apis import prediction_log_pb2

    record = prediction_log_pb2.PredictionLog()
    metadata = record.log_metadata
    metadata.model_spec.CopyFrom(response.model_spec)
    metadata.sampling_config.CopyFrom(sampling_config)
    metadata.saved_model_tags.append(SERVE_TAG)
    metadata.timestamp_secs = timestamp_secs
    logged = getattr(record, kind)
    logged.request.CopyFrom(request)
    logged.response.CopyFrom(response)
    return record


class _Route(NamedTuple):
    rate: float
    sampling_config: object
    logger: RequestLogger


class ServerRequestLogger:
    """TF Serving's ServerRequestLogger: model name -> its logger, replaced whole by ``update`` (every config
    reload); ``log`` on the request path. A filename_prefix named by several models (or again after a reload)
    keeps one logger, so its files never collide; a logger no model names any more is closed."""

    def __init__(self, options: RequestLogOptions, metrics: Metrics):
        self.options = options
        self.metrics = metrics
        self._routes: Dict[str, _Route] = {}  # replaced whole, never mutated: the request path reads it unlocked
        self._loggers: Dict[str, RequestLogger] = {}
        self._lock = threading.Lock()
        self._closed = False

    def check(self, config) -> None:
        """Raises ServingError for a ModelServerConfig whose logging this server cannot apply."""
        check_model_server_config(config)

    def update(self, config) -> None:
        """Applies the logging_config of every model of ``config`` (a ModelServerConfig, checked)."""
        from tensorflow_serving.config import logging_config_pb2

        with self._lock:
            if self._closed:
                return
            routes, used = {}, {}
            for model in config.model_config_list.config:
                if not model.HasField("logging_config"):
                    continue
                prefix = model.logging_config.log_collector_config.filename_prefix
                logger = used.get(prefix) or self._loggers.get(prefix)
                if logger is None:
                    try:
                        logger = RequestLogger(prefix, self.options, self.metrics)
                    except OSError as e:  # its directory cannot be listed: a file, no permission
                        for new in set(used.values()) - set(self._loggers.values()):
                            new.close()
                        raise errors.failed_precondition(f"model {model.name}: cannot log requests under {prefix}: "
                                                         f"{e}") from None
                used[prefix] = logger
                sampling = logging_config_pb2.SamplingConfig()
                sampling.CopyFrom(model.logging_config.sampling_config)
                routes[model.name] = _Route(sampling.sampling_rate, sampling, logger)
            if routes != self._routes:
                log.info("request logging: %s", ", ".join(f"{name} at {r.rate:g} to {r.logger.filename_prefix}"
                                                          for name, r in sorted(routes.items())) or "off")
            self._routes = routes
            retired = [logger for prefix, logger in self._loggers.items() if prefix not in used]
            self._loggers = used
        for logger in retired:
            logger.close()

    def log(self, model_name: str, kind: str, build: Callable, *args) -> None:
        """The request path, after a successful call: sample; if sampled, enqueue ``build(*args)`` (a function
        returning the request and response protos, run on the writer thread). Never raises."""
        route = self._routes.get(model_name)
        if route is None or not random.random() < route.rate:
            return
        try:
            route.logger.offer(_Entry(model_name, route.sampling_config, int(time.time()), kind, build, args))
        except Exception:  # noqa: BLE001 - logging never fails a request
            log.exception("request log of model %s", model_name)

    def close(self) -> None:
        """Flushes every queue and completes every file (server stop, SIGTERM); later updates do nothing."""
        with self._lock:
            self._closed = True
            loggers, self._loggers, self._routes = list(self._loggers.values()), {}, {}
        for logger in loggers:
            logger.close()


# -- what each transport hands over (run on the writer thread) -----------------------------------------
def protos(request, response):
    """gRPC: the call's own request and response."""
    return request, response


def _request_spec(request, name: str, version: Optional[int], label: Optional[str], signature_name: str):
    """The model spec of a request TF Serving's REST handler builds (http_rest_api_handler.cc): the path's
    name, version or label, and the body's signature_name as given."""
    request.model_spec.name = name
    if version is not None:
        request.model_spec.version.value = version
    elif label:
        request.model_spec.version_label = label
    request.model_spec.signature_name = signature_name
    return request


def rest_predict(servable, version, label, signature_name: str, signature_key: str, inputs, outputs):
    """REST :predict: the PredictRequest of its parsed inputs (numpy, by alias) and the PredictResponse."""
    from tensorflow_serving.apis import predict_pb2

    request = _request_spec(predict_pb2.PredictRequest(), servable.name, version, label, signature_name)
    for alias, value in inputs.items():
        inference.fill_tensor_proto(request.inputs[alias], value)
    return request, inference.predict_response(servable, signature_key, outputs)


def rest_classify(servable, version, label, signature_name: str, signature_key: str, input_proto, rows):
    from tensorflow_serving.apis import classification_pb2

    request = _request_spec(classification_pb2.ClassificationRequest(), servable.name, version, label,
                            signature_name)
    request.input.CopyFrom(input_proto)
    return request, inference.classify_response(servable, signature_key, rows)


def rest_regress(servable, version, label, signature_name: str, signature_key: str, input_proto, values):
    from tensorflow_serving.apis import regression_pb2

    request = _request_spec(regression_pb2.RegressionRequest(), servable.name, version, label, signature_name)
    request.input.CopyFrom(input_proto)
    return request, inference.regress_response(servable, signature_key, values)
