"""tfxp serving-config and tfxp release: models.config for TF Serving, and canary, promote and rollback
as label moves in it, which a server polling the file follows with zero failed requests under load."""
import os
import shutil
import subprocess
import sys

import pytest
import requests
import yaml

from pipeline.config import load_config
from serving import release
from serving.options import CANARY, PREVIOUS, STABLE
from tests.support import half_plus_two
from bench.model_server import ModelServerProcess
from tests.support.serving_load import NAME, Load, wait_until


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("built")
    return {v: half_plus_two.write(str(root / str(v)), b=float(v)) for v in (1, 2)}


@pytest.fixture
def project(tmp_path, built):
    """A config whose push dir holds version 1 of the model, and its serving config written."""
    serving_dir = tmp_path / "serving_model"
    shutil.copytree(built[1], serving_dir / NAME / "1")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"pipeline_name": NAME, "data_root": str(tmp_path / "data"),
                                      "output_root": str(tmp_path / "runs"), "serving_dir": str(serving_dir)}))
    release.write_serving_config(load_config(str(config)).serving_target)
    return config, serving_dir / NAME, tmp_path / "runs" / "serving_config" / NAME


def tfxp(*args, config):
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args, "--config", str(config)],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))


def state(config_dir):
    return release.read_state(str(config_dir / "models.config"), NAME)


def test_serving_config_writes_the_files_tensorflow_model_server_reads(project):
    from serving.protos import read_batching_parameters, read_model_server_config, read_monitoring_config

    _, base, config_dir = project
    model = read_model_server_config(str(config_dir / "models.config")).model_config_list.config[0]
    assert (model.name, model.base_path, model.model_platform) == (NAME, str(base), "tensorflow")
    assert list(model.model_version_policy.specific.versions) == [1]
    assert dict(model.version_labels) == {STABLE: 1}
    assert read_batching_parameters(str(config_dir / "batching_parameters.txt")).max_batch_size.value == 64
    assert read_monitoring_config(str(config_dir / "monitoring.config")).prometheus_config.enable
    assert (config_dir / "compose.env").read_text().count(str(base)) == 1
    assert not [name for name in os.listdir(config_dir) if name.endswith(".tmp")]


@pytest.mark.slow
def test_serving_config_keeps_the_release_state_unless_reset(project, built):
    config, base, config_dir = project
    shutil.copytree(built[2], base / "2")
    assert tfxp("serving-config", config=config).returncode == 0
    assert state(config_dir).labels == {STABLE: 1}
    assert tfxp("serving-config", "--reset", config=config).returncode == 0
    assert state(config_dir).labels == {STABLE: 2}


@pytest.mark.slow
def test_canary_promote_and_rollback_switch_a_polling_server_with_no_failed_request(project, built):
    config, base, config_dir = project
    flags = [f"--model_config_file={config_dir / 'models.config'}", "--model_config_file_poll_wait_seconds=0.3",
             "--allow_version_labels_for_unavailable_models=true"]
    with ModelServerProcess(flags, str(config_dir.parent), wait_for_model=NAME) as server:
        with Load(server, target=lambda: {"label": STABLE}) as load:
            wait_until(lambda: len(load.answers) > 20, what="answers")
            shutil.copytree(built[2], base / "2")  # the Pusher's next version

            canary = tfxp("release", "canary", "2", "--server", server.url, config=config)
            assert canary.returncode == 0, canary.stderr
            assert state(config_dir).labels == {STABLE: 1, CANARY: 2}
            wait_until(lambda: label_answers(server, CANARY) == 2, what="the canary label")
            assert label_answers(server, STABLE) == 1
            before_promotion = len(load.answers)

            assert tfxp("release", "promote", config=config).returncode == 0
            assert state(config_dir).labels == {STABLE: 2, PREVIOUS: 1}
            wait_until(lambda: load.answers[-1] == 2, what="stable to move to version 2")
            promoted_at = len(load.answers)

            assert tfxp("release", "rollback", config=config).returncode == 0
            assert state(config_dir).labels == {STABLE: 1}
            wait_until(lambda: load.answers[-1] == 1, what="stable to move back to version 1")
            rolled_back_at = len(load.answers)
            wait_until(lambda: len(load.answers) > rolled_back_at + 20, what="answers after the rollback")
        print(f"release under load: {len(load.answers)} answers, {len(load.failures)} failures")
        assert load.failures == [], load.failures[:5]
        assert set(load.answers[:before_promotion]) == {1}, "stable answered from the canary before promotion"
        assert set(load.answers[promoted_at:rolled_back_at]) <= {1, 2}
        assert set(load.answers[rolled_back_at:]) == {1}
        # Version 2 is unloaded after the rollback.
        wait_until(lambda: version_state(server, 2) == "END", what="version 2 to be unloaded")


def label_answers(server, label):
    reply = requests.post(f"{server.url}/v1/models/{NAME}/labels/{label}:predict", json={"instances": [[0.0]]},
                          timeout=30)
    return round(reply.json()["predictions"][0][0]) if reply.ok else None


def version_state(server, version):
    reply = requests.get(f"{server.url}/v1/models/{NAME}/versions/{version}", timeout=10)
    return reply.json()["model_version_status"][0]["state"] if reply.ok else None


@pytest.mark.slow
def test_canary_without_a_server_to_wait_for_adds_the_version_but_not_the_label(project, built):
    config, base, config_dir = project
    shutil.copytree(built[2], base / "2")
    result = tfxp("release", "canary", "2", config=config)
    assert result.returncode == 2
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("tfxp release: error:") and "pass --server" in error
    assert state(config_dir).versions == [1, 2] and state(config_dir).labels == {STABLE: 1}


@pytest.mark.slow
def test_a_canary_of_a_version_that_was_never_pushed_is_refused_and_changes_nothing(project):
    config, base, config_dir = project
    before = (config_dir / "models.config").read_text()
    result = tfxp("release", "canary", "7", "--server", "127.0.0.1:9", config=config)
    assert result.returncode == 2
    assert f"version 7 is not in {base} (pushed: 1)" in result.stderr
    assert (config_dir / "models.config").read_text() == before


@pytest.mark.parametrize("labels, expected", [
    ({STABLE: 1, CANARY: 2}, {STABLE: 1}),
    ({STABLE: 2, PREVIOUS: 1}, {STABLE: 1}),
])
def test_rollback_drops_the_canary_or_returns_to_the_previous_stable(labels, expected):
    state_before = release.ReleaseState(NAME, "/m", sorted(set(labels.values())), labels)
    after = release.plan_rollback(state_before)
    assert after.labels == expected and after.versions == sorted(set(expected.values()))


def test_rollback_and_promote_with_nothing_to_move_say_so():
    only_stable = release.ReleaseState(NAME, "/m", [1], {STABLE: 1})
    with pytest.raises(release.ReleaseError, match="nothing to roll back"):
        release.plan_rollback(only_stable)
    with pytest.raises(release.ReleaseError, match="no canary to promote"):
        release.plan_promote(only_stable)


@pytest.mark.slow
def test_a_release_without_models_config_names_the_command_that_writes_it(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"pipeline_name": NAME, "data_root": str(tmp_path / "data"),
                                      "output_root": str(tmp_path / "runs")}))
    result = tfxp("release", "promote", config=config)
    assert result.returncode == 2
    assert "no models.config here; write it first with tfxp serving-config" in result.stderr
