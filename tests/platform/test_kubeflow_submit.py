"""tfxp submit: one-off runs with run parameter values (--param) and schedules (--schedule), against a fake
KFP API server that records its requests (tests/support/fake_kfp.py)."""
import hashlib
import os

import pytest

from pipeline import kubeflow_runner
from pipeline.config import CONFIG_DIR, load_config
from tests.support.fake_kfp import FakeKFP
from tests.support.kfp_compiled import LOCAL_SCHEMA, compiled, kubeflow_config  # noqa: F401 (fixtures)


# -- tfxp submit --schedule, against a fake KFP API server that records its requests ----------------

CRON = "0 0 3 * * *"


def _schedule(host, *args, package=None):
    from pipeline import cli
    return cli.main(["submit", "--host", host, "--schedule", CRON, "--set", LOCAL_SCHEMA]
                    + (["--package", package] if package else []) + list(args))


def _uploaded_version_names(kfp_api):
    return [r.query["name"] for r in kfp_api.requests_to("POST", "/pipelines/upload_version")]


def _content_name(package):
    with open(package, "rb") as f:
        return f"chicago-taxi-{hashlib.sha256(f.read()).hexdigest()[:12]}"


def test_a_schedule_uploads_the_package_as_a_version_named_after_it_and_creates_a_recurring_run(compiled, capsys):
    with FakeKFP() as kfp_api:
        assert _schedule(kfp_api.url, "--max-concurrency", "3", package=compiled[0]) == 0
        (pipeline,) = kfp_api.pipelines.values()
        (version,) = kfp_api.versions.values()
        (created,) = kfp_api.requests_to("POST", "/recurringruns")
    with open(compiled[0], "rb") as f:
        assert version["package_sha256"] == hashlib.sha256(f.read()).hexdigest()  # the package's very bytes
    assert pipeline["display_name"] == "chicago-taxi" and version["pipeline_id"] == pipeline["pipeline_id"]
    assert version["display_name"] == _content_name(compiled[0])
    assert created.body["trigger"] == {"cron_schedule": {"cron": CRON}}
    assert created.body["pipeline_version_reference"] == {"pipeline_id": pipeline["pipeline_id"],
                                                         "pipeline_version_id": version["pipeline_version_id"]}
    assert (created.body["max_concurrency"], created.body["mode"], created.body["no_catchup"]) == (3, "ENABLE", False)
    assert created.body["display_name"] == "chicago-taxi" and created.body["runtime_config"] == {"parameters": {}}
    out = capsys.readouterr().out
    assert f"version       {version['display_name']} (id {version['pipeline_version_id']}, uploaded from" in out
    assert f"cron '{CRON}' (UTC), at most 3 run(s) at a time, catchup on, enabled" in out


def test_the_same_schedule_again_reuses_the_version_and_leaves_the_recurring_run_as_it_is(compiled, capsys):
    with FakeKFP() as kfp_api:
        assert _schedule(kfp_api.url, package=compiled[0]) == 0
        assert _schedule(kfp_api.url, package=compiled[0]) == 0
        assert len(_uploaded_version_names(kfp_api)) == 1 and len(kfp_api.requests_to("POST", "/recurringruns")) == 1
        assert len(kfp_api.recurring_runs) == 1
    assert "already there, reused" in capsys.readouterr().out.split("pipeline      ")[-1]


def test_other_settings_under_the_same_schedule_name_need_replace_which_swaps_the_recurring_run(compiled, capsys):
    with FakeKFP() as kfp_api:
        assert _schedule(kfp_api.url, package=compiled[0]) == 0
        (first,) = kfp_api.recurring_runs
        assert _schedule(kfp_api.url, "--no-catchup", package=compiled[0]) == 2
        assert f"already has a recurring run named 'chicago-taxi' with other settings (id {first}:" in \
            capsys.readouterr().err
        assert list(kfp_api.recurring_runs) == [first]
        assert _schedule(kfp_api.url, "--no-catchup", "--replace", package=compiled[0]) == 0
        (second,) = kfp_api.recurring_runs.values()
        assert second["no_catchup"] is True and second["recurring_run_id"] != first
        assert [r.path for r in kfp_api.requests_to("DELETE", f"/recurringruns/{first}")]  # deleted after the new one


def test_compiling_the_same_code_and_config_again_gives_the_same_version(compiled, tmp_path, monkeypatch):
    monkeypatch.setattr(kubeflow_runner, "default_package_path", lambda cfg: str(tmp_path / "p.yaml"))
    with FakeKFP() as kfp_api:
        assert _schedule(kfp_api.url, package=compiled[0]) == 0
        assert _schedule(kfp_api.url) == 0  # compiles again
        assert _uploaded_version_names(kfp_api) == [_content_name(compiled[0])]
    with open(compiled[0], "rb") as first, open(tmp_path / "p.yaml", "rb") as again:
        assert first.read() == again.read()  # TFX writes no timestamp: byte for byte the same


def test_a_config_change_gives_another_version_of_the_same_pipeline(compiled, tmp_path, monkeypatch):
    monkeypatch.setattr(kubeflow_runner, "default_package_path", lambda cfg: str(tmp_path / "p.yaml"))
    with FakeKFP() as kfp_api:
        assert _schedule(kfp_api.url, package=compiled[0]) == 0
        assert _schedule(kfp_api.url, "--set", "training.train_steps=7", "--replace") == 0
        names = _uploaded_version_names(kfp_api)
        assert names == [_content_name(compiled[0]), _content_name(tmp_path / "p.yaml")] and names[0] != names[1]
        assert len(kfp_api.pipelines) == 1 and len(kfp_api.recurring_runs) == 1
        (run,) = kfp_api.recurring_runs.values()
        assert kfp_api.versions[run["pipeline_version_reference"]["pipeline_version_id"]]["display_name"] == names[1]


@pytest.mark.parametrize("cron, says", [
    ("0 3 * * *", "5 fields, but KFP's cron: 6 fields"),  # a crontab line: KFP would read 0 as the seconds
    ("0 0 25 * * *", "hour field '25': 25 is outside 0-23"),
    ("0 0 3 * * funday", "day-of-week field 'funday': 'funday' is not a number or a name"),
    ("*/0 * * * * *", "step '0' is not a positive whole number"),
    ("0 0 5-3 * * *", "the range 5-3 runs backwards"),
    ("@daily", "1 field(s), but KFP's cron: 6 fields"),
])
def test_a_bad_cron_fails_in_one_line_naming_schedule_before_reaching_the_host(cron, says, capsys):
    from pipeline import cli
    assert cli.main(["submit", "--host", "http://127.0.0.1:9", "--schedule", cron]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"tfxp submit: error: --schedule {cron!r}: ") and says in line, line


@pytest.mark.parametrize("cron", ["0 0 3 * * *", "*/30 * * * * ?", "0 15 10 ? * MON-FRI", "0 0 0 1 jan,jul *",
                                  "5/15 0-30/10 8-18 1,15 * 1-5"])
def test_kfp_cron_expressions_pass_the_check(cron):
    from pipeline.kubeflow_schedule import check_cron
    assert check_cron(cron) == cron


@pytest.mark.parametrize("args, says", [
    (["--max-concurrency", "11", "--schedule", CRON], "--max-concurrency 11: KFP takes 1 to 10"),
    (["--no-catchup"], "--no-catchup: only with --schedule CRON"),
    (["--schedule", CRON, "--run-name", "nightly"], "--run-name names a one-off run"),
])
def test_schedule_flags_that_do_not_fit_fail_in_one_line(args, says, capsys):
    from pipeline import cli
    assert cli.main(["submit", "--host", "http://127.0.0.1:9"] + args) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("tfxp submit: error: ") and says in line, line


def test_a_schedule_on_an_unreachable_host_is_a_clear_error_before_compiling(monkeypatch):
    from pipeline import kubeflow_schedule
    monkeypatch.setattr(kubeflow_runner, "compile_pipeline",
                        lambda *a: pytest.fail("compiled before checking the host"))
    cfg = load_config(os.path.join(CONFIG_DIR, "kubeflow.yaml"))
    with pytest.raises(kubeflow_runner.SubmitError, match="cannot reach Kubeflow Pipelines at http://127.0.0.1:9"):
        kubeflow_schedule.schedule(cfg, "http://127.0.0.1:9", CRON)


# -- run parameter values: tfxp submit --param NAME=VALUE ----------------------------------------------

def test_param_values_reach_a_one_off_run_typed_as_the_package_declares_them(compiled, capsys):
    from pipeline import cli
    with FakeKFP() as kfp_api:
        assert cli.main(["submit", "--host", kfp_api.url, "--package", compiled[0], "--set", LOCAL_SCHEMA,
                         "--param", "train_steps=2000", "--param", "gate_threshold=0.7",
                         "--param", "data_root=gs://bucket/data/2026-12"]) == 0
        (run,) = kfp_api.runs.values()
    assert run["runtime_config"]["parameters"] == {"train_steps": 2000, "gate_threshold": 0.7,
                                                   "data_root": "gs://bucket/data/2026-12"}
    assert f"submitted run {run['run_id']}" in capsys.readouterr().out


def test_param_values_reach_every_scheduled_run(compiled):
    with FakeKFP() as kfp_api:
        assert _schedule(kfp_api.url, "--param", "eval_steps=50", package=compiled[0]) == 0
        (created,) = kfp_api.requests_to("POST", "/recurringruns")
    assert created.body["runtime_config"] == {"parameters": {"eval_steps": 50}}


@pytest.mark.parametrize("param, says", [
    ("learning_rate=0.1", "--param learning_rate: {package} has no such run parameter; it has data_root, "
                          "eval_steps, gate_threshold, train_steps"),
    ("train_steps=1e3", "--param train_steps: expected an integer, got '1e3'"),
    ("gate_threshold=high", "--param gate_threshold: expected a number, got 'high'"),
    ("train_steps", "--param 'train_steps': expected NAME=VALUE"),
])
def test_a_bad_param_fails_in_one_line_before_anything_is_created(compiled, param, says, capsys):
    from pipeline import cli
    with FakeKFP() as kfp_api:
        assert cli.main(["submit", "--host", kfp_api.url, "--package", compiled[0], "--set", LOCAL_SCHEMA,
                         "--param", param]) == 2
        assert not kfp_api.runs
    (line,) = capsys.readouterr().err.splitlines()
    assert says.format(package=compiled[0]) in line, line
