"""Prometheus metrics with ``prometheus_client``, at TF Serving's path.

* ``tfxp_serving_requests_total{model,version,signature,api,protocol,status}`` and
  ``tfxp_serving_request_latency_seconds{...}`` (histogram): per model, version, signature and status.
* TF Serving's own series under its own names, so dashboards written for it keep working:
  ``:tensorflow:serving:request_count{model_name,status}`` and
  ``:tensorflow:serving:request_latency_*{model_name,API,entrypoint}`` (microseconds).
* ``tfxp_serving_model_versions{model,state}``: how many versions of each model are in each state.
* Request logs (serving/request_log.py): TF Serving's ``:tensorflow:serving:request_log_count{model_name,
  status_code}`` per sampled request (OK: written; RESOURCE_EXHAUSTED: dropped, the queue was full; INTERNAL:
  the write failed) and ``tfxp_serving_request_log_dropped_total{model,reason}`` (queue_full, error, stopped).
"""
from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from typing import Dict, Tuple

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import HistogramMetricFamily, Metric

DEFAULT_PATH = "/monitoring/prometheus/metrics"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
# TF Serving's request_latency buckets: exponential 10 us * 1.8^k, 33 of them.
_TFS_BUCKETS_US = [10 * 1.8 ** k for k in range(33)]
_ENTRYPOINT = {"grpc": "GRPC", "rest": "REST"}


class _TFServingSeries:
    """TF Serving's series names (':' in them), collected from plain dicts."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts: Dict[Tuple[str, str], int] = defaultdict(int)
        self.latency: Dict[Tuple[str, str, str], list] = {}
        self.log_counts: Dict[Tuple[str, str], int] = defaultdict(int)

    def logged(self, model: str, status_code: str) -> None:
        with self.lock:
            self.log_counts[(model, status_code)] += 1

    def record(self, model: str, api: str, protocol: str, status: str, seconds: float) -> None:
        micros = seconds * 1e6
        with self.lock:
            self.counts[(model, status)] += 1
            key = (model, api, _ENTRYPOINT[protocol])
            buckets = self.latency.setdefault(key, [0] * (len(_TFS_BUCKETS_US) + 1) + [0.0])
            index = bisect.bisect_left(_TFS_BUCKETS_US, micros)
            buckets[index] += 1
            buckets[-1] += micros

    def collect(self):
        with self.lock:
            counts = dict(self.counts)
            latency = {k: list(v) for k, v in self.latency.items()}
            log_counts = dict(self.log_counts)
        count = Metric(":tensorflow:serving:request_count", "The total number of requests.", "untyped")
        for (model, status), value in sorted(counts.items()):
            count.add_sample(":tensorflow:serving:request_count", {"model_name": model, "status": status}, value)
        yield count
        histogram = HistogramMetricFamily(
            ":tensorflow:serving:request_latency",
            "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
            labels=["model_name", "API", "entrypoint"])
        for (model, api, entrypoint), values in sorted(latency.items()):
            cumulative, buckets = 0, []
            for bound, n in zip(_TFS_BUCKETS_US + [float("inf")], values[:-1]):
                cumulative += n
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            histogram.add_metric([model, api, entrypoint], buckets, values[-1])
        yield histogram
        if log_counts:
            name = ":tensorflow:serving:request_log_count"
            logged = Metric(name, "The total number of requests logged from the model server sliced down by "
                                  "model_name and status code.", "untyped")
            for (model, status_code), value in sorted(log_counts.items()):
                logged.add_sample(name, {"model_name": model, "status_code": status_code}, value)
            yield logged


class Metrics:
    """The server's metrics, in a registry of its own (several servers can live in one process)."""

    def __init__(self):
        self.registry = CollectorRegistry()
        labels = ["model", "version", "signature", "api", "protocol", "status"]
        self.requests = Counter("tfxp_serving_requests", "Requests answered, by model, version, signature, "
                                "API, protocol and status.", labels, registry=self.registry)
        self.latency = Histogram("tfxp_serving_request_latency_seconds", "Request latency in the server.",
                                 labels, buckets=LATENCY_BUCKETS, registry=self.registry)
        self.versions = _VersionStates()
        self.registry.register(self.versions)
        self._tf_serving = _TFServingSeries()
        self.registry.register(self._tf_serving)
        self.log_dropped = Counter("tfxp_serving_request_log_dropped", "Sampled requests whose log record was not "
                                   "written, by model and reason (queue_full, error, stopped).", ["model", "reason"],
                                   registry=self.registry)

    def record(self, model: str, version: str, signature: str, api: str, protocol: str, status: str,
               seconds: float) -> None:
        values = (model, version, signature, api, protocol, status)
        self.requests.labels(*values).inc()
        self.latency.labels(*values).observe(seconds)
        self._tf_serving.record(model, api, protocol, status, seconds)

    def request_logged(self, model: str, status_code: str) -> None:
        """One sampled request's log record: written (OK), dropped or failed (TF Serving's request_log_count)."""
        self._tf_serving.logged(model, status_code)

    def request_log_dropped(self, model: str, reason: str) -> None:
        self.log_dropped.labels(model, reason).inc()

    def page(self) -> bytes:
        return generate_latest(self.registry)


class _VersionStates:
    def __init__(self):
        self.states: Dict[Tuple[str, int], str] = {}

    def set(self, model: str, version: int, state: str) -> None:
        self.states[(model, version)] = state

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        gauge = GaugeMetricFamily("tfxp_serving_model_versions", "Model versions by state.", labels=["model", "state"])
        totals: Dict[Tuple[str, str], int] = defaultdict(int)
        for (model, _), state in list(self.states.items()):
            totals[(model, state)] += 1
        for (model, state), n in sorted(totals.items()):
            gauge.add_metric([model, state], n)
        yield gauge
