"""The InfraValidator's local model server runner: TFX's runner contract (Start, WaitUntilRunning,
GetEndpoint, Stop) around a real `tfxp serve`, which TFX's own gRPC client then finds the model in."""
import os
import time

import grpc
import pytest
from tfx.components.infra_validator import error_types
from tfx.components.infra_validator.model_server_clients.tensorflow_serving_client import TensorFlowServingClient
from tfx.proto import infra_validator_pb2

from components.custom.infra_validator import LocalProcessRunner, describe_failure
from tests.serving.conftest import MODEL

SPEC = infra_validator_pb2.ServingSpec(model_name=MODEL, tensorflow_serving=infra_validator_pb2.TensorFlowServing(
    tags=["2.16.1"]))


def test_the_runner_serves_the_model_until_stopped_and_leaves_nothing_behind(half_plus_two_base):
    runner = LocalProcessRunner(os.path.join(half_plus_two_base, "123"), None, SPEC)
    runner.Start()
    try:
        runner.WaitUntilRunning(time.time() + 90)
        client = TensorFlowServingClient(runner.GetEndpoint(), MODEL)  # TFX's own, as the executor uses it
        client.WaitUntilModelLoaded(time.time() + 90, polling_interval_sec=1)
    finally:
        runner.Stop()
    with pytest.raises(grpc.RpcError):
        client._GetModelStatus()  # stopped: nothing listens any more
    assert MODEL in runner.GetLogs()
    assert not os.path.exists(runner._workdir)


def test_a_server_that_dies_before_it_listens_aborts_the_job(half_plus_two_base):
    runner = LocalProcessRunner(os.path.join(half_plus_two_base, "123"), None, SPEC)
    runner.Start()
    runner._process.kill()
    try:
        with pytest.raises(error_types.JobAborted, match="tfxp serve exited"):
            runner.WaitUntilRunning(time.time() + 60)
    finally:
        runner.Stop()


def test_a_failed_request_is_described_in_one_line_not_by_the_request():
    class Rpc(grpc.RpcError):
        def code(self):
            return grpc.StatusCode.INVALID_ARGUMENT

        def details(self):
            return "NOT_FOUND: output_scale.txt; No such file or directory\n\t [[{{node ReadFile}}]]"

    try:
        raise error_types.ValidationFailed("Model server failed to respond to the request model_spec {...}") from Rpc()
    except error_types.ValidationFailed as e:
        assert describe_failure(e) == ("the server could not answer a request: INVALID_ARGUMENT: "
                                       "NOT_FOUND: output_scale.txt; No such file or directory")
