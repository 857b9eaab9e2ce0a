"""`tfxp diagnose-input`: training's own input pipeline, measured stage by stage."""
import os

import pytest

from pipeline import cli, diagnose_input


@pytest.mark.beam
@pytest.mark.training
def test_diagnosis_measures_every_stage_and_gives_a_verdict(workspace):
    transformed = workspace.transformed("synth_multiclass")
    d = diagnose_input.diagnose(transformed["examples_uri"], transformed["transform_output"],
                                workspace.user("synth_multiclass"), batch_size=32, measure_examples=3_000,
                                train_steps=10, rounds=1)
    assert list(d["stages_examples_per_second"]) == ["read", "+shuffle", "+parse", "+prefetch (full pipeline)",
                                                      "+cache (full pipeline)"]
    assert all(eps > 0 for eps in d["stages_examples_per_second"].values())
    assert d["tf_dataset_factory_examples_per_second"] > 0
    assert d["verdict"] == ("input-bound" if d["input_over_compute"] < 1 else "compute-bound")
    assert d["limiting_stage"] in d["stages_examples_per_second"]
    text = diagnose_input.format_diagnosis(d)
    assert d["verdict"].upper() in text and "tf_dataset_factory" in text


@pytest.mark.beam
def test_the_stages_are_the_training_pipeline_cut_short(workspace):
    import tensorflow_transform as tft
    transformed, user = workspace.transformed("synth_binary"), workspace.user("synth_binary")
    files = sorted(__import__("glob").glob(transformed["files"]["train"]))
    stages = diagnose_input.stage_datasets(files, tft.TFTransformOutput(transformed["transform_output"]), user, 8)
    read = next(iter(stages["read"]()))
    assert read.dtype.name == "string" and tuple(read.shape) == (8,)  # serialized records, batched
    features, label = next(iter(stages["+parse"]()))
    assert set(features) == {f.transformed_name for f in user.model_features} and tuple(label.shape) == (8,)


def test_diagnose_input_before_any_run_is_a_clear_error(tmp_path, capsys):
    code = cli.main(["diagnose-input", "--set", f"output_root={tmp_path}"])
    assert code == 2
    assert "run `make run`" in capsys.readouterr().err
    assert not os.listdir(tmp_path)
