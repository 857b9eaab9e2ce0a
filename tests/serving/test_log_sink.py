"""`tfxp log-sink` (serving/log_sink.py, serving/payload_events.py): KServe's payload-logger events in, request
logs out, read back with tfxp/request_logs.py as `tfxp drift` reads them.

The events are built as KServe's agent sends them (kserve pkg/logger/handler.go and worker.go, cloudevents
sdk-go v2 in binary mode): one POST per event; the attributes in Ce-* headers, in Go's canonical case; the
same Ce-Id on a request and its response; the inference request's Content-Type on both; the body the request
as the client sent it (serving/client.py's REST body) or the reply as the server wrote it (serving/json_tensor.py,
TF Serving's replies); no response event when the server answered an error; GETs sent too, with an empty body.
"""
import datetime
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import requests
import tensorflow as tf
import uvicorn

from bench.model_server import free_port
from serving import client, json_tensor, log_sink, payload_events
from serving.log_shipper import LogShipper, spool_prefix
from serving.log_writer import LogWriter
from tfxp import contract, request_logs

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ISVC, NAMESPACE = "chicago-taxi", "ml-serving"
AGENT_SOURCE = "http://localhost:9081/"   # the agent's --source-uri default
JSON = "application/json"


# -- events as KServe's agent sends them ----------------------------------------------------------------------
def rfc3339nano(seconds: float) -> str:
    """Go's time.RFC3339Nano in UTC, as sdk-go writes Ce-Time: the fraction's trailing zeros dropped."""
    moment = datetime.datetime.fromtimestamp(int(seconds), datetime.timezone.utc)
    fraction = f"{round((seconds % 1) * 1e9):09d}".rstrip("0")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


def agent_headers(kind, event_id, at, content_type=JSON):
    headers = {
        "Ce-Specversion": "1.0",
        "Ce-Id": event_id,
        "Ce-Type": payload_events.REQUEST_TYPE if kind == "request" else payload_events.RESPONSE_TYPE,
        "Ce-Source": AGENT_SOURCE,
        "Ce-Time": rfc3339nano(at),
        "Ce-Recordedtime": rfc3339nano(time.time()),
        "Ce-Inferenceservicename": ISVC,
        "Ce-Namespace": NAMESPACE,
        "Ce-Component": "predictor",
        "Ce-Endpoint": "",
        "Ce-Metadata": "{}",
    }
    if content_type is not None:
        headers["Content-Type"] = content_type
    return headers


def example(i: int) -> bytes:
    ex = tf.train.Example()
    ex.features.feature["trip_miles"].float_list.value.append(1.5 * i)
    ex.features.feature["payment_type"].bytes_list.value.append(b"Cash" if i % 2 else b"Credit Card")
    return ex.SerializeToString(deterministic=True)   # the same bytes on every call (a map)


def predict_body(examples):
    """What `tfxp predict` sends (serving/client.py), as requests writes it."""
    return json.dumps(client.rest_body(examples, client.ModelSpec(ISVC))).encode()


def predict_reply(probabilities):
    return json_tensor.predict_reply({contract.OUTPUTS: np.array(probabilities, np.float32).reshape(-1, 1)},
                                     json_tensor.ROW).encode()


# -- the sink on loopback -----------------------------------------------------------------------------------
class LoopbackSink:
    """The sink's app, writer and metrics in this process, served by uvicorn on a free loopback port."""

    def __init__(self, prefix, pair_timeout=30.0):
        self.prefix = str(prefix)
        self.sink = log_sink.LogSink(LogWriter(self.prefix, 1 << 20, 3600, 1 << 30), pair_timeout)
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(log_sink.make_app(self.sink), host="127.0.0.1", port=port,
                                                    log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            assert self.thread.is_alive()
            time.sleep(0.01)

    def send(self, kind, event_id, body, at=None, content_type=JSON, **header_changes):
        headers = agent_headers(kind, event_id, time.time() if at is None else at, content_type)
        headers.update(header_changes)
        return requests.post(self.url + "/", data=body, headers=headers, timeout=10)

    def count(self, name, **labels):
        return self.sink.metrics.registry.get_sample_value(f"tfxp_log_sink_{name}_total", labels) or 0

    def close(self):
        """Stops as on SIGTERM; the records written, read back as `tfxp drift` reads them."""
        self.server.should_exit = True
        self.thread.join(10)
        self.sink.close()
        return list(request_logs.read_logs(request_logs.log_files(self.prefix)))


@pytest.fixture
def sink(tmp_path):
    running = LoopbackSink(tmp_path / "logs" / ISVC)
    yield running
    if not running.sink.closed:
        running.close()


# -- pairs ----------------------------------------------------------------------------------------------------
def test_a_predict_request_and_its_response_are_one_prediction_log(sink):
    examples, asked_at = [example(1), example(2)], 1796277693.123456789
    assert sink.send("request", "id-1", predict_body(examples), at=asked_at).status_code == 200
    assert sink.send("response", "id-1", predict_reply([0.529, 0.133]), at=asked_at + 0.004).status_code == 200
    (log,) = sink.close()
    assert log.WhichOneof("log_type") == "predict_log"
    assert request_logs.examples_of(log) == examples
    request, response = log.predict_log.request, log.predict_log.response
    assert request.model_spec.name == response.model_spec.name == log.log_metadata.model_spec.name == ISVC
    assert request.model_spec.signature_name == contract.SIGNATURE == response.model_spec.signature_name
    assert tf.make_ndarray(request.inputs[contract.EXAMPLES]).tolist() == examples
    np.testing.assert_allclose(tf.make_ndarray(response.outputs[contract.OUTPUTS]), [[0.529], [0.133]], rtol=1e-6)
    assert log.log_metadata.timestamp_secs == 1796277693   # when the request reached the agent
    metadata = log.log_metadata
    assert metadata.sampling_config.sampling_rate == 1.0 and list(metadata.saved_model_tags) == ["serve"]
    assert sink.count("pairs_written", log_type="predict_log") == 1
    assert sink.count("events", type="request") == sink.count("events", type="response") == 1


def test_the_response_may_arrive_before_its_request(sink):
    assert sink.send("response", "id-2", predict_reply([0.25])).status_code == 200
    assert sink.send("request", "id-1", predict_body([example(1)])).status_code == 200
    assert sink.send("request", "id-2", predict_body([example(2)])).status_code == 200
    assert sink.send("response", "id-1", predict_reply([0.75])).status_code == 200
    logs = sink.close()
    by_example = {request_logs.examples_of(log)[0]: log for log in logs}
    assert set(by_example) == {example(1), example(2)}
    assert by_example[example(2)].predict_log.response.outputs[contract.OUTPUTS].float_val == [0.25]
    assert by_example[example(1)].predict_log.response.outputs[contract.OUTPUTS].float_val == [0.75]


def test_classify_and_regress_are_told_apart_by_their_results(sink):
    rows = [{"trip_miles": 1.5, "payment_type": "Cash"}, {"trip_miles": 3.0, "payment_type": "Credit Card"}]
    body = json.dumps({"signature_name": "serving_default", "examples": rows}).encode()
    sink.send("request", "classify", body)
    sink.send("response", "classify", json_tensor.classify_reply([[(b"0", 0.25), (b"1", 0.75)],
                                                                   [(b"0", 0.5), (b"1", 0.5)]]).encode())
    sink.send("request", "regress", json.dumps({"examples": rows[:1], "context": {"company": "Taxi Co"}}).encode())
    sink.send("response", "regress", json_tensor.regress_reply([12.5]).encode())
    logs = {log.WhichOneof("log_type"): log for log in sink.close()}
    assert set(logs) == {"classify_log", "regress_log"}
    classified = logs["classify_log"].classify_log
    assert [tf.train.Example.FromString(e).features.feature["payment_type"].bytes_list.value[0]
            for e in request_logs.examples_of(logs["classify_log"])] == [b"Cash", b"Credit Card"]
    assert [[(c.label, round(c.score, 3)) for c in row.classes] for row in classified.response.result.classifications] \
        == [[("0", 0.25), ("1", 0.75)], [("0", 0.5), ("1", 0.5)]]
    assert classified.request.model_spec.signature_name == contract.SIGNATURE
    regressed = logs["regress_log"]
    (merged,) = request_logs.examples_of(regressed)   # the context's features with the example's
    assert set(tf.train.Example.FromString(merged).features.feature) == {"trip_miles", "payment_type", "company"}
    assert [r.value for r in regressed.regress_log.response.result.regressions] == [12.5]
    assert regressed.regress_log.request.model_spec.signature_name == ""   # as the client sent it
    assert regressed.regress_log.response.model_spec.signature_name == contract.SIGNATURE


def test_columnar_bodies_and_a_curl_content_type_are_read_as_json(sink):
    """curl -d sends application/x-www-form-urlencoded; the agent passes it on, on both events."""
    form = "application/x-www-form-urlencoded"
    body = json.dumps({"inputs": {"examples": [{"b64": client.rest_body([example(3)], client.ModelSpec(ISVC))[
        "instances"][0]["b64"]}]}}).encode()
    outputs = json_tensor.predict_reply({contract.OUTPUTS: np.array([[0.5]], np.float32)}, json_tensor.COLUMNAR)
    sink.send("request", "columnar", body, content_type=form)
    sink.send("response", "columnar", outputs.encode(), content_type=form)
    sink.send("request", "no-type", predict_body([example(4)]), content_type=None)
    sink.send("response", "no-type", predict_reply([0.5]), content_type=None)
    logs = sink.close()
    assert sorted(request_logs.examples_of(log)[0] for log in logs) == sorted([example(3), example(4)])


# -- what is not paired, not an inference, not an event --------------------------------------------------------
def test_a_request_the_server_refused_is_dropped_and_counted_after_the_timeout(tmp_path):
    """KServe sends no response event when the server answers an error: the request waits in vain."""
    sink = LoopbackSink(tmp_path / ISVC, pair_timeout=0.3)
    sink.send("request", "refused", predict_body([example(1)]))
    sink.send("response", "lost-request", predict_reply([0.5]))
    sink.send("request", "answered", predict_body([example(2)]))
    sink.send("response", "answered", predict_reply([0.5]))
    deadline = time.monotonic() + 10
    while sink.count("unpaired", type="request") < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sink.count("unpaired", type="request") == 1 and sink.count("unpaired", type="response") == 1
    assert sink.sink.metrics.registry.get_sample_value("tfxp_log_sink_pending") == 0
    sink.send("response", "refused", predict_reply([0.5]))   # too late: it waits for a request in turn
    (log,) = sink.close()
    assert request_logs.examples_of(log) == [example(2)]
    assert sink.count("unpaired", type="response") == 2   # counted at shutdown


def test_get_status_and_metadata_events_are_ignored_and_counted(sink):
    """A GET's request event has an empty body; its reply is a status or metadata JSON."""
    status = json.dumps({"model_version_status": [{"version": "1", "state": "AVAILABLE"}]}).encode()
    metadata = json.dumps({"model_spec": {"name": ISVC}, "metadata": {"signature_def": {}}}).encode()
    for event_id, reply in (("status", status), ("metadata", metadata)):
        assert sink.send("request", event_id, b"", content_type=None).status_code == 200
        assert sink.send("response", event_id, reply, content_type=None).status_code == 200
    assert sink.close() == []
    assert sink.count("ignored", type="request") == 2 and sink.count("ignored", type="response") == 2
    assert sink.count("unpaired", type="request") == 0 and sink.count("unpaired", type="response") == 0


@pytest.mark.parametrize("change, body, kind, says", [
    ({}, b"<html>not json</html>", "request", "JSON Parse error"),
    ({}, b'{"instances": "one"}', "request", "Expecting 'instances' to be an list/array"),
    ({}, b'{"rows": [1]}', "request", "Missing 'inputs', 'instances' or 'examples' key"),
    ({"Ce-Type": "org.kubeflow.serving.inference.other"}, b"{}", "other", "is not a KServe inference event"),
    ({"Ce-Type": ""}, b"{}", "other", "no Ce-Type header"),
    ({"Ce-Id": ""}, b'{"instances": [1]}', "request", "no Ce-Id header"),
])
def test_a_bad_event_is_400_with_one_line_counted_and_the_sink_goes_on(sink, change, body, kind, says):
    answer = sink.send("request", "bad", body, **change)
    assert answer.status_code == 400 and says in answer.text
    assert answer.text.endswith("\n") and answer.text.count("\n") == 1
    assert sink.count("unparsable", type=kind) == 1
    sink.send("request", "good", predict_body([example(1)]))
    sink.send("response", "good", predict_reply([0.5]))
    assert [request_logs.examples_of(log) for log in sink.close()] == [[example(1)]]


def test_a_result_that_does_not_answer_its_request_is_counted(sink):
    sink.send("request", "mismatch", predict_body([example(1)]))
    sink.send("response", "mismatch", json_tensor.regress_reply([1.0]).encode())
    assert sink.close() == []
    assert sink.count("unparsable", type="pair") == 1


def test_health_and_metrics_pages(sink):
    assert requests.get(sink.url + log_sink.HEALTH_PATH, timeout=5).text == "ok\n"
    sink.send("request", "x", predict_body([example(1)]))
    page = requests.get(sink.url + log_sink.METRICS_PATH, timeout=5).text
    assert 'tfxp_log_sink_events_total{type="request"} 1.0' in page and "tfxp_log_sink_pending 1.0" in page


def test_a_reused_id_and_a_full_map_drop_the_older_event():
    dropped = []
    pairer = log_sink.Pairer(timeout=60, max_pending=2, on_unpaired=dropped.append)

    def event(kind, event_id):
        return payload_events.Event(event_id, kind, ISVC, 0.0, payload_events.Half("predict", None))

    first = event("request", "a")
    assert pairer.add(first) is None
    assert pairer.add(event("request", "a")) is None and dropped == [first]   # a client reused its Ce-Id
    pairer.add(event("request", "b"))
    pairer.add(event("request", "c"))
    assert [e.id for e in dropped] == ["a", "a"] and list(pairer.pending) == ["b", "c"]
    request, response = pairer.add(event("response", "b"))
    assert (request.kind, response.kind) == ("request", "response")


def test_a_time_as_go_writes_it():
    assert payload_events.parse_time("2026-12-03T06:01:33.123456789Z") == pytest.approx(1796277693.123456789)
    assert payload_events.parse_time("2026-12-03T07:01:33+01:00") == 1796277693
    assert payload_events.parse_time("yesterday") is None


# -- gs:// and SIGTERM, in real processes -----------------------------------------------------------------------
def test_complete_files_are_moved_to_the_remote_prefix_whole(tmp_path):
    """The shipper's rule on any tf.io.gfile path (the sink takes gs:// only; see the FakeGCS test below)."""
    remote = str(tmp_path / "bucket" / ISVC)
    local = spool_prefix(remote, str(tmp_path / "spool"))
    writer = LogWriter(local, 1 << 20, 3600, 1 << 30)
    shipper = LogShipper(local, remote, interval=3600)
    writer.write(b"one")
    assert shipper.ship() == 0   # the file being written stays
    writer.close()
    shipper.close()
    (shipped,) = request_logs.log_files(remote)
    assert os.path.basename(shipped).startswith(ISVC + "-") and list(request_logs.read_records([shipped])) == [b"one"]
    assert os.listdir(tmp_path / "spool") == [] and os.listdir(tmp_path / "bucket") == [os.path.basename(shipped)]


def start_sink(tmp_path, *flags, env=None):
    port = free_port()
    output = open(tmp_path / f"sink-{port}.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "log-sink", f"--port={port}", *flags],
                               cwd=REPO, stdout=output, stderr=subprocess.STDOUT,
                               env=dict(env or os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, (tmp_path / f"sink-{port}.log").read_text()
        try:
            if requests.get(url + log_sink.HEALTH_PATH, timeout=2).status_code == 200:
                return process, url, output
        except requests.ConnectionError:
            time.sleep(0.2)
    process.kill()
    raise TimeoutError((tmp_path / f"sink-{port}.log").read_text())


def post(url, kind, event_id, body):
    answer = requests.post(url + "/", data=body, headers=agent_headers(kind, event_id, time.time()), timeout=10)
    assert answer.status_code == 200, answer.text


@pytest.mark.slow
def test_sigterm_writes_the_pairs_and_completes_the_file(tmp_path):
    prefix = tmp_path / "logs" / ISVC
    process, url, output = start_sink(tmp_path, f"--filename_prefix={prefix}")
    for i in range(3):
        post(url, "response", f"id-{i}", predict_reply([0.1 * i]))
        post(url, "request", f"id-{i}", predict_body([example(i)]))
    post(url, "request", "never-answered", predict_body([example(9)]))
    assert request_logs.log_files(str(prefix)) == []   # the file is still being written (under .tmp)
    process.send_signal(signal.SIGTERM)
    assert process.wait(60) == 0
    output.close()
    logs = list(request_logs.read_logs(request_logs.log_files(str(prefix.parent))))
    assert sorted(request_logs.examples_of(log)[0] for log in logs) == sorted(example(i) for i in range(3))
    assert not [name for name in os.listdir(prefix.parent) if name.endswith(request_logs.TEMP_SUFFIX)]
    with open(output.name) as f:
        assert "unpaired at shutdown (dropped, counted): 1" in f.read()


@pytest.mark.slow
def test_a_gs_prefix_gets_whole_files_from_the_spool(tmp_path):
    from tests.support.fake_gcs import FakeGCS

    with FakeGCS() as gcs:
        prefix = gcs.url("request_logs", ISVC, ISVC)
        process, url, output = start_sink(tmp_path, f"--filename_prefix={prefix}",
                                          f"--spool_dir={tmp_path / 'spool'}", env=dict(os.environ))
        for i in range(2):
            post(url, "request", f"id-{i}", predict_body([example(i)]))
            post(url, "response", f"id-{i}", predict_reply([0.5]))
        process.send_signal(signal.SIGTERM)
        assert process.wait(60) == 0, open(output.name).read()
        output.close()
        files = request_logs.log_files(prefix)
        logs = list(request_logs.read_logs(files))
    assert len(files) == 1 and files[0].startswith(prefix + "-")
    assert sorted(request_logs.examples_of(log)[0] for log in logs) == sorted([example(0), example(1)])
    assert os.listdir(tmp_path / "spool") == []
