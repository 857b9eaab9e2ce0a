"""The one config: loading, overrides, and everything rejected before any work."""
import os

import pytest

from pipeline.config import CONFIG_DIR, ConfigError, load_config


def _config(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return str(path)


MINIMAL = "pipeline_name: mine\ndata_root: /data/mine\n"


def test_the_sample_config_loads_with_paths_under_the_output_root():
    cfg = load_config()
    assert (cfg.pipeline_name, cfg.user_package) == ("chicago_taxi", "components")
    assert cfg.resolved_pipeline_root.startswith(cfg.resolved_output_root)
    assert cfg.resolved_metadata_path.startswith(cfg.resolved_output_root)
    assert cfg.serving_model_dir.endswith("serving_model/chicago_taxi")


def test_a_config_needs_only_a_name_and_the_data(tmp_path):
    cfg = load_config(_config(tmp_path, MINIMAL))
    assert cfg.source_csv is None and cfg.schema_path is None and cfg.evaluation.threshold is None
    assert cfg.training.train_steps == 1000 and cfg.tflite.quantizations == ["dynamic_range", "int8"]
    assert cfg.training.learning_rate is None and not cfg.tuning.enabled  # model.py's defaults, no Tuner


def test_a_config_without_a_name_says_so(tmp_path):
    with pytest.raises(ConfigError, match="c.yaml: missing required key.*pipeline_name"):
        load_config(_config(tmp_path, "data_root: /data\n"))


def test_overrides_are_typed_like_the_field():
    assert load_config(overrides=["evaluation.threshold=null", "schema_path=null"]).evaluation.threshold is None
    cfg = load_config(overrides=["training.train_steps=12", "enable_cache=false", "evaluation.threshold=0.7",
                                 "output_root=/tmp/x", "beam_args=[--a, --b]", "training.learning_rate=1e-2"])
    assert cfg.training.train_steps == 12 and cfg.enable_cache is False
    assert cfg.evaluation.threshold == 0.7 and cfg.training.learning_rate == 0.01
    assert cfg.resolved_serving_dir == "/tmp/x/serving_model"
    assert cfg.beam_args == ["--a", "--b"]


def test_beam_preset_flags_come_first_and_beam_args_override_them():
    cfg = load_config(overrides=["beam_preset=multi_processing", "beam_args=[--direct_num_workers=2]"])
    assert cfg.resolved_beam_args == ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
    assert load_config().resolved_beam_args == ["--direct_running_mode=in_memory"]


def test_on_the_direct_runner_tfxp_run_names_this_project_as_the_beam_workers_dependency():
    """Without a dependency flag, each TFX Beam executor builds an sdist of TFX that DirectRunner never uses."""
    from pipeline.config import PROJECT_ROOT
    from pipeline.local_runner import local_beam_args
    assert local_beam_args(load_config()) == ["--direct_running_mode=in_memory",
                                              f"--setup_file={os.path.join(PROJECT_ROOT, 'setup.py')}"]
    given = load_config(overrides=["beam_args=[--extra_package=/wheels/mine.tar.gz]"])
    assert local_beam_args(given) == given.resolved_beam_args
    remote = load_config(overrides=["beam_preset=dataflow",
                                    "beam_args=[--project=p, --region=europe-west1, --temp_location=gs://b/tmp]"])
    assert local_beam_args(remote) == remote.resolved_beam_args


def test_remote_beam_preset_names_the_flags_it_still_needs():
    with pytest.raises(ConfigError, match="dataflow needs beam_args --project, --region, --temp_location"):
        load_config(overrides=["beam_preset=dataflow"])
    cfg = load_config(overrides=["beam_preset=dataflow",
                                 "beam_args=[--project=p, --region=europe-west1, --temp_location=gs://b/tmp]"])
    assert cfg.resolved_beam_args[0] == "--runner=DataflowRunner"
    cfg = load_config(f"{CONFIG_DIR}/kubeflow.yaml")
    assert cfg.resolved_pipeline_root.startswith("gs://") and cfg.beam_preset == "multi_processing"


@pytest.mark.parametrize("overrides, message", [
    (["no_such_key=1"], "unknown key 'no_such_key'"),
    (["training.train_steps=many"], "training: train_steps: expected an integer"),
    (["training.train_steps=0"], "training.train_steps must be at least 1"),
    (["training.strategy=quantum"], "training.strategy must be one of"),
    (["enable_cache=maybe"], "expected true or false"),
    (["training.train_steps"], "key=value"),
    (["beam_preset=warp"], "beam_preset must be one of"),
    (["beam_args=[direct_num_workers=2]"], "--flag=value"),
    (["nope.x=1"], "'nope' is not a section"),
    (["evaluation.gate_metric=rmse"], "binary classification of 'big_tipper' reports accuracy, auc, not 'rmse'"),
    (["evaluation.threshold=60"], "accuracy is a fraction, so the threshold must be in \\[0, 1\\]"),
    (["tflite.quantizations=[int4]"], "unknown mode\\(s\\) 'int4'"),
    (["user_package=nowhere"], "user_package 'nowhere': no such Python package"),
    (["training.learning_rate=0"], "training.learning_rate must be > 0"),
    (["tuning.algorithm=grid"], "tuning.algorithm must be one of random, bayesian, hyperband, got 'grid'"),
    (["tuning.max_trials=0"], "tuning.max_trials must be at least 1"),
    (["tuning.steps_per_trial=0"], "tuning.steps_per_trial must be at least 1"),
    (["tuning.executions_per_trial=0"], "tuning.executions_per_trial must be at least 1"),
    (["tuning.max_consecutive_failed_trials=0"], "tuning.max_consecutive_failed_trials must be at least 1"),
    (["tuning.enabled=sometimes"], "tuning: enabled: expected true or false"),
    (["tuning.trials=3"], "unknown key 'trials'"),
])
def test_bad_values_fail_before_any_work_with_a_clear_message(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=overrides)


def test_a_key_naming_a_feature_is_checked_only_when_set(tmp_path):
    # Another dataset: its features have no trip_start_hour, and nothing in the config names one.
    path = _config(tmp_path, MINIMAL + "user_package: synth_multiclass\n")
    cfg = load_config(path)
    assert cfg.slice_features == ["region"]  # the package's SLICE_FEATURES
    assert load_config(path, ["evaluation.slice_features=[channel]"]).slice_features == ["channel"]
    assert load_config(path, ["evaluation.slice_features=channel"]).slice_features == ["channel"]
    assert load_config(path, ["evaluation.slice_features=null"]).slice_features == ["region"]
    with pytest.raises(ConfigError, match="evaluation.slice_features: 'trip_start_hour' not in FEATURES of "
                                          "synth_multiclass/features.py"):
        load_config(path, ["evaluation.slice_features=[trip_start_hour]"])


def test_the_gate_follows_the_task(tmp_path):
    regression = load_config(_config(tmp_path, MINIMAL + "user_package: synth_regression\n"))
    assert (regression.gate_metric.name, regression.gate_metric.higher_is_better) == ("mae", False)
    # An error metric is not a fraction: any threshold goes.
    assert load_config(_config(tmp_path, MINIMAL + "user_package: synth_regression\nevaluation: {threshold: 60}\n"))


@pytest.mark.parametrize("overrides, message", [
    (["training.strategy=parameter_server", "tflite.quantization_aware_training=true"],
     "quantization_aware_training cannot run with training.strategy parameter_server"),
    (["training.strategy=one_device", "training.cpu_devices=2"], "only make replicas for strategy mirrored"),
    (["tflite.quantizations=[]"], "nothing to convert"),
    (["tflite.representative_examples=0"], "int8 needs representative examples"),
])
def test_combinations_that_cannot_work_are_rejected_when_the_config_loads(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=overrides)


def test_qat_with_the_tflite_branch_off_trains_no_qat_model():
    cfg = load_config(overrides=["tflite.enabled=false", "tflite.quantization_aware_training=true",
                                 "training.strategy=parameter_server"])
    assert cfg.quantization_aware_training is False


def test_unknown_yaml_key_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match="c.yaml: unknown key.*trian_steps"):
        load_config(_config(tmp_path, MINIMAL + "trian_steps: 3\n"))
    with pytest.raises(ConfigError, match="c.yaml: training: unknown key.*trian_steps"):
        load_config(_config(tmp_path, MINIMAL + "training: {trian_steps: 3}\n"))


def test_a_wrongly_typed_yaml_value_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match="c.yaml: training: batch_size: expected an integer, got 'big'"):
        load_config(_config(tmp_path, MINIMAL + "training: {batch_size: big}\n"))


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "none.yaml"))


# -- base: a config that builds on another --------------------------------------------------------------

def test_the_engine_presets_build_on_the_kubeflow_preset_and_state_only_what_differs():
    kubeflow = load_config(os.path.join(CONFIG_DIR, "kubeflow.yaml"))
    for name, engine in (("kubeflow-vertex.yaml", "vertex"), ("kubeflow-tfjob.yaml", "tfjob")):
        preset = load_config(os.path.join(CONFIG_DIR, name))
        assert preset.kubeflow.training.engine == engine and preset.training.strategy == "multi_worker_mirrored"
        # Everything else is the Kubeflow preset's: paths, steps, the resources section beside the engine's.
        assert (preset.data_root, preset.image, preset.training.train_steps, preset.kubeflow.resources) == \
            (kubeflow.data_root, kubeflow.image, kubeflow.training.train_steps, kubeflow.kubeflow.resources)


def test_base_merges_sections_key_by_key_and_replaces_lists(tmp_path):
    (tmp_path / "base.yaml").write_text("pipeline_name: p\ndata_root: /data\nbeam_args: [--a=1, --b=2]\n"
                                        "training: {train_steps: 5, batch_size: 8}\n")
    (tmp_path / "child.yaml").write_text("base: base.yaml\nbeam_args: [--c=3]\ntraining: {train_steps: 9}\n")
    cfg = load_config(str(tmp_path / "child.yaml"), overrides=["training.batch_size=16"])
    assert (cfg.pipeline_name, cfg.data_root, cfg.beam_args) == ("p", "/data", ["--c=3"])
    assert (cfg.training.train_steps, cfg.training.batch_size) == (9, 16)


@pytest.mark.parametrize("files, message", [
    ({"child.yaml": "base: missing.yaml\n"}, "child.yaml: base {dir}/missing.yaml: config file not found"),
    ({"child.yaml": "base: child.yaml\n"}, "base: child.yaml leads back to itself"),
    ({"child.yaml": "base: other.yaml\n", "other.yaml": "base: child.yaml\n"}, "base: child.yaml leads back to itself"),
    ({"child.yaml": "base: [a.yaml]\n"}, "child.yaml: base: expected the file name of another config"),
])
def test_a_bad_base_is_one_line_naming_the_file(tmp_path, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=message.format(dir=tmp_path).replace("[", r"\[")):
        load_config(str(tmp_path / "child.yaml"))
