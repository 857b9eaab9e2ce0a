"""The training input pipeline and `tfxp diagnose-input`, on a real tf.Transform output."""
import os

import numpy as np
import pytest

from components import trainer
from pipeline import cli, diagnose_input


@pytest.fixture(scope="module")
def tft_output(transformed):
    import tensorflow_transform as tft
    return tft.TFTransformOutput(transformed["transform_output"])


def _rows(dataset):
    rows = []
    for features, label in dataset:
        names = sorted(features)
        columns = [features[n].numpy().reshape(-1) for n in names] + [label.numpy().reshape(-1)]
        rows.extend(tuple(np.round(values, 5)) for values in zip(*columns))
    return sorted(rows)


@pytest.mark.parametrize("cache", [False, True])
def test_shuffled_pipeline_yields_the_same_multiset_as_a_sequential_read(transformed, tft_output, cache):
    pattern = transformed["files"]["train"]
    shuffled = trainer.make_input_dataset(pattern, tft_output, 32, shuffle=True, num_epochs=1, cache=cache)
    sequential = trainer.make_input_dataset(pattern, tft_output, 32, shuffle=False, num_epochs=1)
    shuffled_rows, sequential_rows = _rows(shuffled), _rows(sequential)
    assert len(sequential_rows) == len(transformed["rows"]["train"])
    assert shuffled_rows == sequential_rows


def test_shuffling_changes_the_order(transformed, tft_output):
    pattern = transformed["files"]["train"]
    shuffled = next(iter(trainer.make_input_dataset(pattern, tft_output, 64, shuffle=True, num_epochs=1)))[0]
    plain = next(iter(trainer.make_input_dataset(pattern, tft_output, 64, shuffle=False, num_epochs=1)))[0]
    assert not np.array_equal(shuffled["fare_xf"].numpy(), plain["fare_xf"].numpy())


def test_diagnosis_measures_every_stage_and_gives_a_verdict(transformed):
    examples_dir = os.path.dirname(os.path.dirname(transformed["files"]["train"]))
    d = diagnose_input.diagnose(examples_dir, transformed["transform_output"], batch_size=32,
                                measure_examples=3_000, train_steps=10, rounds=1)
    assert list(d["stages_examples_per_second"]) == ["read", "+shuffle", "+parse", "+prefetch (full pipeline)",
                                                      "+cache (full pipeline)"]
    assert all(eps > 0 for eps in d["stages_examples_per_second"].values())
    assert d["tf_dataset_factory_examples_per_second"] > 0
    assert d["verdict"] in ("input-bound", "compute-bound")
    assert d["verdict"] == ("input-bound" if d["input_over_compute"] < 1 else "compute-bound")
    assert d["limiting_stage"] in d["stages_examples_per_second"]
    text = diagnose_input.format_diagnosis(d)
    assert d["verdict"].upper() in text and "tf_dataset_factory" in text


def test_diagnose_input_before_any_run_is_a_clear_error(tmp_path, capsys):
    code = cli.main(["diagnose-input", "--set", f"output_root={tmp_path}"])
    assert code == 2
    assert "run `make run`" in capsys.readouterr().err
