"""The InfraValidator's local model server runners: TFX's runner contract (Start, WaitUntilRunning,
GetEndpoint, Stop) around a real `tfxp serve` process, which TFX's own gRPC client then finds the model in;
and the same process started ahead of the validation (StandbyServer)."""
import os
import time

import grpc
import pytest
from tfx.components.infra_validator import error_types
from tfx.components.infra_validator.model_server_clients.tensorflow_serving_client import TensorFlowServingClient
from tfx.proto import infra_validator_pb2

from components.custom.infra_validator import LocalProcessRunner, StandbyServer, describe_failure
from tests.serving.conftest import MODEL

SPEC = infra_validator_pb2.ServingSpec(model_name=MODEL, tensorflow_serving=infra_validator_pb2.TensorFlowServing(
    tags=["2.16.1"]))


@pytest.mark.slow
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
    assert not os.path.exists(runner._server.workdir)


def test_a_server_that_dies_before_it_listens_aborts_the_job(half_plus_two_base):
    runner = LocalProcessRunner(os.path.join(half_plus_two_base, "123"), None, SPEC)
    runner.Start()
    runner._server.process.kill()
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


def _validate(runner):
    """What TFX's executor does with a runner: start, wait, let its own client find the model, stop."""
    runner.Start()
    try:
        runner.WaitUntilRunning(time.time() + 90)
        TensorFlowServingClient(runner.GetEndpoint(), MODEL).WaitUntilModelLoaded(time.time() + 90, 1)
        return runner.GetEndpoint(), runner.GetLogs()
    finally:
        runner.Stop()


@pytest.mark.slow
def test_a_server_started_ahead_validates_the_first_candidate_and_a_retry_gets_a_process_of_its_own(
        half_plus_two_base):
    standby = StandbyServer()
    standby.start()  # as the pipeline does when the Trainer starts: the imports happen meanwhile
    try:
        first = standby.runner(os.path.join(half_plus_two_base, "123"), None, SPEC)
        endpoint, logs = _validate(first)
        assert "started ahead" in repr(first) and MODEL in logs
        assert standby._server.process.poll() is None  # the standby's process is the StandbyServer's to end
        retry = standby.runner(os.path.join(half_plus_two_base, "123"), None, SPEC)
        retry_endpoint, _ = _validate(retry)
        assert "started ahead" not in repr(retry) and retry_endpoint != endpoint
    finally:
        standby.close()
    assert standby._server.process.poll() is not None and not os.path.exists(standby._server.workdir)


@pytest.mark.slow
def test_a_server_never_started_ahead_leaves_the_validation_to_a_process_of_its_own(half_plus_two_base):
    standby = StandbyServer()
    runner = standby.runner(os.path.join(half_plus_two_base, "123"), None, SPEC)
    try:
        _validate(runner)
        assert "started ahead" not in repr(runner)
    finally:
        standby.close()


@pytest.mark.slow
def test_the_server_ends_by_itself_when_the_run_that_started_it_is_killed(tmp_path):
    import signal
    import subprocess
    import sys

    import psutil

    script = ("from components.custom.infra_validator import StandbyServer\n"
              "import time\nstandby = StandbyServer()\nstandby.start()\n"
              "print(standby._server.process.pid, flush=True)\ntime.sleep(600)\n")
    run = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=str(tmp_path))
    server = psutil.Process(int(run.stdout.readline()))
    run.send_signal(signal.SIGKILL)  # a killed `tfxp run`: no cleanup of its own
    run.wait()
    server.wait(timeout=120)  # psutil.TimeoutExpired if it were left behind
