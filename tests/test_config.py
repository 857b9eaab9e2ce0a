import pytest

from pipeline.config import ConfigError, PipelineConfig, load_config


def test_default_config_loads_with_paths_under_the_output_root():
    cfg = load_config()
    assert cfg.pipeline_name == "chicago_taxi"
    assert cfg.resolved_pipeline_root.startswith(cfg.resolved_output_root)
    assert cfg.resolved_metadata_path.startswith(cfg.resolved_output_root)
    assert cfg.serving_model_dir.endswith("serving_model/chicago_taxi")


def test_overrides_are_typed_like_the_field():
    cfg = load_config(overrides=["train_steps=12", "enable_cache=false", "evaluation.min_accuracy=0.7",
                                 "output_root=/tmp/x", "beam_args=[--a, --b]"])
    assert cfg.train_steps == 12 and cfg.enable_cache is False
    assert cfg.evaluation.min_accuracy == 0.7
    assert cfg.resolved_serving_dir == "/tmp/x/serving_model"
    assert cfg.beam_args == ["--a", "--b"]


def test_beam_preset_flags_come_first_and_beam_args_override_them():
    cfg = load_config(overrides=["beam_preset=multi_processing", "beam_args=[--direct_num_workers=2]"])
    assert cfg.resolved_beam_args == ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
    assert load_config().resolved_beam_args == ["--direct_running_mode=in_memory"]


def test_remote_beam_preset_names_the_flags_it_still_needs():
    with pytest.raises(ConfigError, match="dataflow needs beam_args --project, --region, --temp_location"):
        load_config(overrides=["beam_preset=dataflow"])
    cfg = load_config(overrides=["beam_preset=dataflow",
                                 "beam_args=[--project=p, --region=europe-west1, --temp_location=gs://b/tmp]"])
    assert cfg.resolved_beam_args[0] == "--runner=DataflowRunner"


def test_kubeflow_preset_loads():
    from pipeline.config import CONFIG_DIR
    cfg = load_config(f"{CONFIG_DIR}/kubeflow.yaml")
    assert cfg.resolved_pipeline_root.startswith("gs://")
    assert cfg.beam_preset == "multi_processing"


def test_yaml_file_is_read(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("pipeline_name: other\ntrain_steps: 3\nevaluation:\n  slice_features: [payment_type]\n")
    cfg = load_config(str(path))
    assert (cfg.pipeline_name, cfg.train_steps, cfg.evaluation.slice_features) == ("other", 3, ["payment_type"])


@pytest.mark.parametrize("overrides, message", [
    (["no_such_key=1"], "unknown key"),
    (["train_steps=many"], "expected a number"),
    (["train_steps=0"], "at least 1"),
    (["strategy=quantum"], "strategy must be one of"),
    (["evaluation.slice_features=[nope]"], "not a feature"),
    (["enable_cache=maybe"], "true or false"),
    (["train_steps"], "key=value"),
    (["beam_preset=warp"], "beam_preset must be one of"),
    (["beam_args=[direct_num_workers=2]"], "--flag=value"),
])
def test_bad_overrides_fail_with_a_clear_message(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=overrides)


def test_unknown_yaml_key_names_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("trian_steps: 3\n")
    with pytest.raises(ConfigError, match="c.yaml.*trian_steps"):
        load_config(str(path))


def test_missing_config_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(str(tmp_path / "none.yaml"))


def test_dataclass_defaults_match_the_shipped_yaml():
    assert load_config() == PipelineConfig()
