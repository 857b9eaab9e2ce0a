"""Versions and labels while serving: new versions load completely (and warm up) before they serve,
half-copied ones are never loaded, removed ones are unloaded, labels move atomically, all under load
with zero failed requests."""
import os
import shutil
import time

import grpc
import pytest
import requests
from tensorflow_serving.apis import model_management_pb2, model_service_pb2_grpc

from tests.serving.conftest import write_config
from tests.support import half_plus_two
from bench.model_server import ModelServerProcess
from tests.support.serving_load import NAME, Load, status, wait_until

pytestmark = pytest.mark.slow  # each test starts its own server and drives it under load (6-10 s)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Versions 1, 2 and 3 of the model, built once, copied in by the tests."""
    root = tmp_path_factory.mktemp("built")
    return {v: half_plus_two.write(str(root / str(v)), b=float(v)) for v in (1, 2, 3)}


def test_a_new_version_loads_fully_before_it_serves_and_a_removed_one_is_unloaded(built, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(built[1], base / "1")
    with ModelServerProcess([f"--model_name={NAME}", f"--model_base_path={base}",
                             "--file_system_poll_wait_seconds=0.2"], str(tmp_path), wait_for_model=NAME) as server:
        with Load(server) as load:
            # A copy in progress: everything but saved_model.pb, which a copy (and TFX's Pusher) writes last.
            shutil.copytree(built[2], base / "2", ignore=shutil.ignore_patterns("saved_model.pb"))
            time.sleep(1.5)
            assert 2 not in status(server), "a version dir without saved_model.pb was loaded"
            shutil.copy(os.path.join(built[2], "saved_model.pb"), base / "2" / "saved_model.pb")
            wait_until(lambda: status(server).get(2, {}).get("state") == "AVAILABLE", what="version 2")
            wait_until(lambda: status(server).get(1, {}).get("state") == "END", what="version 1 unloaded")
            answered_at = len(load.answers)
            wait_until(lambda: len(load.answers) > answered_at + 20, what="answers from version 2")
            assert set(load.answers[answered_at:]) == {2}
            # Removing the latest version brings back the one before it, which serves before 2 goes.
            shutil.rmtree(base / "2")
            wait_until(lambda: status(server).get(2, {}).get("state") == "END", what="version 2 unloaded")
            answered_at = len(load.answers)
            wait_until(lambda: len(load.answers) > answered_at + 20, what="answers after the removal")
            assert set(load.answers[answered_at:]) == {1}
        assert load.failures == [], load.failures[:5]
        assert len(load.answers) > 100
        assert set(load.answers) == {1, 2}


def test_a_label_moved_in_the_config_file_takes_effect_on_the_next_poll(built, tmp_path):
    base = tmp_path / "base"
    for version in (1, 2):
        shutil.copytree(built[version], base / str(version))
    config = tmp_path / "models.config"
    policy = "model_version_policy { specific { versions: 1 versions: 2 } }"
    write_config(config, [(NAME, str(base), policy, {"stable": 1, "canary": 2})])
    with ModelServerProcess([f"--model_config_file={config}", "--model_config_file_poll_wait_seconds=0.3",
                             "--allow_version_labels_for_unavailable_models=true"],
                            str(tmp_path), wait_for_model=NAME) as server:
        with Load(server, target=lambda: {"label": "stable"}) as load:
            wait_until(lambda: len(load.answers) > 20, what="answers")
            assert set(load.answers) == {1}
            write_config(config, [(NAME, str(base), policy, {"stable": 2, "canary": 2})])
            wait_until(lambda: load.answers[-1] == 2, what="the label to move")
            moved_at = len(load.answers)
            # A label to a version that is not available is refused; the labels stay as they were.
            write_config(config, [(NAME, str(base), policy, {"stable": 3})])
            time.sleep(1.5)
            wait_until(lambda: len(load.answers) > moved_at + 20, what="answers")
        assert load.failures == [], load.failures[:5]
        after = load.answers[moved_at:]
        assert set(after) == {2}, "answers after the move came from another version"
        assert "Request to assign label to version 3 of model hp, which is not currently available" in server.log()


def test_reload_config_over_grpc(built, tmp_path):
    from tensorflow_serving.config import model_server_config_pb2

    base = tmp_path / "base"
    shutil.copytree(built[1], base / "1")
    other = tmp_path / "other"
    shutil.copytree(built[3], other / "3")
    with ModelServerProcess([f"--model_name={NAME}", f"--model_base_path={base}"], str(tmp_path),
                            wait_for_model=NAME) as server:
        stub = model_service_pb2_grpc.ModelServiceStub(grpc.insecure_channel(server.grpc_target))
        config = model_server_config_pb2.ModelServerConfig()
        config.model_config_list.config.add(name=NAME, base_path=str(base), model_platform="tensorflow")
        config.model_config_list.config.add(name="other", base_path=str(other), model_platform="tensorflow")
        response = stub.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(config=config), timeout=60)
        assert response.status.error_code == 0, response.status.error_message
        reply = requests.post(f"{server.url}/v1/models/other:predict", json={"instances": [[0.0]]}, timeout=30)
        assert reply.json() == {"predictions": [[3.0]]}
        config.model_config_list.config[1].version_labels["stable"] = 9
        with pytest.raises(grpc.RpcError) as refused:
            stub.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(config=config), timeout=60)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "Request to assign label to version 9 of model other" in refused.value.details()
        del config.model_config_list.config[1]
        stub.HandleReloadConfigRequest(model_management_pb2.ReloadConfigRequest(config=config), timeout=60)
        reply = requests.post(f"{server.url}/v1/models/other:predict", json={"instances": [[0.0]]}, timeout=30)
        assert reply.status_code == 404  # a model removed from the config is unloaded


def test_warmup_requests_are_replayed_before_a_version_serves_and_a_broken_file_fails_the_load(built, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(built[1], base / "1")
    half_plus_two.write_warmup(str(base / "1"), xs=(1.0, 2.0, 3.0))
    with ModelServerProcess([f"--model_name={NAME}", f"--model_base_path={base}",
                             "--file_system_poll_wait_seconds=0.2", "--num_request_iterations_for_warmup=2"],
                            str(tmp_path), wait_for_model=NAME) as server:
        assert "model hp: version 1 warmed up with 6 requests" in server.log()
        shutil.copytree(built[2], base / "2")
        broken = base / "2" / "assets.extra" / "tf_serving_warmup_requests"
        broken.parent.mkdir()
        broken.write_bytes(b"not a TFRecord of PredictionLogs")
        wait_until(lambda: status(server).get(2, {}).get("state") == "END", what="version 2 to fail")
        failed = status(server)[2]["status"]
        assert failed["error_code"] != "OK" and failed["error_message"]
        reply = requests.post(f"{server.url}/v1/models/{NAME}:predict", json={"instances": [[0.0]]}, timeout=30)
        assert reply.json() == {"predictions": [[1.0]]}, "the old version stopped serving"
