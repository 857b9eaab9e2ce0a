"""Clients predicting in a loop against a `tfxp serve` (or anything speaking TF Serving's APIs) while
versions and labels change under them: which version answered, and every failure."""
import threading
import time

import grpc
import requests
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

NAME = "hp"


def version_of_answer(y: float) -> int:
    """Version v of these models answers y = 0.5 * x + v, and the load sends x = 0."""
    return int(round(y))


class Load:
    """REST and gRPC clients predicting x=0 in a loop (model spec given by ``target()``)."""

    def __init__(self, server, target=lambda: {}, threads=4):
        self.server, self.target = server, target
        self.stop = threading.Event()
        self.answers, self.failures = [], []
        self.threads = [threading.Thread(target=self._rest if i % 2 else self._grpc, daemon=True)
                        for i in range(threads)]

    def _path(self, spec) -> str:
        if "label" in spec:
            return f"/v1/models/{NAME}/labels/{spec['label']}:predict"
        return f"/v1/models/{NAME}:predict"

    def _rest(self):
        session = requests.Session()
        while not self.stop.is_set():
            try:
                reply = session.post(self.server.url + self._path(self.target()), json={"instances": [[0.0]]},
                                     timeout=30)
                if reply.status_code == 200:
                    self.answers.append(version_of_answer(reply.json()["predictions"][0][0]))
                else:
                    self.failures.append(reply.text)
            except requests.RequestException as e:
                self.failures.append(repr(e))

    def _grpc(self):
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(self.server.grpc_target))
        while not self.stop.is_set():
            request = predict_pb2.PredictRequest()
            request.model_spec.name = NAME
            spec = self.target()
            if "label" in spec:
                request.model_spec.version_label = spec["label"]
            request.inputs["x"].CopyFrom(tf.make_tensor_proto([[0.0]]))
            try:
                response = stub.Predict(request, timeout=30)
                self.answers.append(version_of_answer(tf.make_ndarray(response.outputs["y"])[0][0]))
            except grpc.RpcError as e:
                self.failures.append(f"{e.code()}: {e.details()}")

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for thread in self.threads:
            thread.join(30)


def status(server):
    reply = requests.get(f"{server.url}/v1/models/{NAME}", timeout=10)
    return {int(v["version"]): v for v in reply.json()["model_version_status"]} if reply.ok else {}


def wait_until(condition, timeout=60, what=""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
