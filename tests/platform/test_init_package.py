"""`tfxp init`: the feature list and task inferred from a CSV, the refusals, and the package it writes.

The inference rule (data/feature_inference.py) is checked on small CSVs written here, and on the
synthetic CSV of each test dataset, whose declared dtypes, kinds and task it must recover as far as
the data shows them. The package written into a temporary folder loads as the platform loads a
user package and passes the config check. The whole pipeline on a generated package: test_init_e2e.py.
"""
import csv
import os
import re
import sys

import pytest

from components.core.feature import (BUCKETIZED, BYTES, CATEGORICAL, FLOAT, INT64, LABEL_SOURCE, NUMERIC, UNUSED,
                                     VOCABULARY)
from components.core.task import BinaryClassification, MulticlassClassification, Regression
from components.core.user_code import load_user_code
from data import feature_inference
from tests.support.examples import read_examples
from pipeline import cli, init_package
from tests.support import synthetic
from tests.support.marks import uses

ROWS = 60


def write_csv(path, columns):
    """A CSV of ``columns`` ({name: list of cell texts}, all the same length)."""
    names = list(columns)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(names)
        writer.writerows(zip(*(columns[n] for n in names)))
    return str(path)


def label_column(values):
    return [values[i % len(values)] for i in range(ROWS)]


@pytest.fixture(scope="module")
def columns(tmp_path_factory):
    """One column per rule, over ROWS rows: {name: InferredColumn}."""
    path = write_csv(tmp_path_factory.mktemp("infer") / "rules.csv", {
        "count": [str(i * 7) for i in range(ROWS)],
        "whole": [f"{i}.0" for i in range(ROWS)],
        "price": [f"{i}.5" for i in range(ROWS)],
        "hour": [str(i % 24) for i in range(ROWS)],
        "code": [str(1000 + 7 * (i % 5)) for i in range(ROWS)],
        "city": label_column(["paris", "rome", "oslo"]),
        "note": [f"free text {i}" for i in range(ROWS)],
        "constant": ["7"] * ROWS,
        "empty": [""] * ROWS,
        "bad name": label_column(["a", "b"]),
        "y": label_column(["no", "yes"]),
    })
    return {c.name: c for c in feature_inference.infer(path, "y").columns}


def kind(column):
    return (column.feature.dtype, column.feature.kind)


def test_a_column_is_int64_when_every_cell_is_a_whole_number_float_when_a_number_else_bytes(columns):
    assert [columns[n].feature.dtype for n in ("count", "whole", "price", "city")] == [INT64, INT64, FLOAT, BYTES]


def test_few_integers_that_look_like_ids_are_categorical_with_num_buckets_covering_every_value(columns):
    assert kind(columns["hour"]) == (INT64, CATEGORICAL) and columns["hour"].feature.num_buckets == 24


def test_few_integers_that_are_codes_are_a_vocabulary_of_them(columns):
    assert kind(columns["code"]) == (INT64, VOCABULARY) and columns["code"].feature.vocab_size == 5


def test_many_valued_integers_and_floats_are_numeric(columns):
    assert [kind(columns[n]) for n in ("count", "whole", "price")] == [(INT64, NUMERIC), (INT64, NUMERIC),
                                                                       (FLOAT, NUMERIC)]


def test_strings_are_a_vocabulary_sized_by_their_distinct_values(columns):
    assert kind(columns["city"]) == (BYTES, VOCABULARY) and columns["city"].feature.vocab_size == 3


def test_strings_that_nearly_every_row_has_its_own_of_are_unused_with_the_reason(columns):
    assert kind(columns["note"]) == (BYTES, UNUSED) and "an id or free text" in columns["note"].reason


def test_a_constant_column_is_unused_with_the_reason(columns):
    assert kind(columns["constant"]) == (INT64, UNUSED) and "the same value (7)" in columns["constant"].reason


def test_an_empty_column_and_a_name_that_is_not_an_identifier_are_left_out_with_the_reason(columns):
    assert columns["empty"].feature is None and "empty in every row" in columns["empty"].reason
    assert columns["bad name"].feature is None and "not a Python identifier" in columns["bad name"].reason


def test_the_label_column_is_the_label_source(columns):
    assert kind(columns["y"]) == (BYTES, LABEL_SOURCE)


def infer_label(tmp_path, values):
    path = write_csv(tmp_path / "label.csv", {"x": [str(i) for i in range(ROWS)], "target": label_column(values)})
    return feature_inference.infer(path, "target")


def test_two_label_values_make_binary_classification_with_the_values_in_sorted_order_as_0_and_1(tmp_path):
    inference = infer_label(tmp_path, ["yes", "no"])
    assert inference.task == BinaryClassification(label="target") and inference.label_values == ("no", "yes")


def test_a_few_label_values_make_multiclass_classification_with_class_names_from_the_data(tmp_path):
    strings, integers = infer_label(tmp_path, ["gold", "bronze", "silver"]), infer_label(tmp_path, ["10", "2", "3"])
    assert strings.task == MulticlassClassification(label="target", class_names=("bronze", "gold", "silver"))
    assert integers.task.class_names == ("2", "3", "10")  # integers in numeric order


def test_many_label_values_make_regression(tmp_path):
    assert infer_label(tmp_path, [f"{i}.25" for i in range(40)]).task == Regression(label="target")


def test_a_label_of_whole_numbers_written_as_floats_is_a_class_and_other_numbers_regress(tmp_path):
    assert isinstance(infer_label(tmp_path, ["0.0", "1.0"]).task, BinaryClassification)
    assert isinstance(infer_label(tmp_path, ["0.5", "1.5"]).task, Regression)


def test_the_slice_feature_is_the_categorical_or_vocabulary_feature_with_the_fewest_values(tmp_path):
    path = write_csv(tmp_path / "slices.csv", {"hour": [str(i % 24) for i in range(ROWS)],
                                               "city": label_column(["paris", "rome", "oslo"]),
                                               "y": label_column(["0", "1"])})
    assert feature_inference.infer(path, "y").slice_features == ("city",)


# What the data cannot show: quantile buckets are a modelling choice (the data shows numbers), and
# synth_binary's record_id is Poisson integers declared UNUSED (the data shows a count).
NOT_IN_THE_DATA = {"kinds": {BUCKETIZED: NUMERIC}, "features": {"record_id": NUMERIC}}


def test_the_inferred_feature_list_recovers_each_test_dataset_s_dtypes_kinds_and_task(package, tmp_path):
    user = load_user_code(package)
    inference = feature_inference.infer(synthetic.write_csv(tmp_path / "data.csv", user, 600), user.task.label)
    expected = {f.name: (f.dtype, NOT_IN_THE_DATA["features"].get(f.name, NOT_IN_THE_DATA["kinds"].get(f.kind, f.kind)))
                for f in user.features}
    assert {f.name: (f.dtype, f.kind) for f in inference.features} == expected
    assert {f.name: f.num_buckets for f in inference.features if f.kind == CATEGORICAL} == \
        {f.name: f.num_buckets for f in user.features if f.kind == CATEGORICAL}
    assert type(inference.task) is type(user.task) and inference.task.label == user.task.label
    assert set(getattr(inference.task, "class_names", ())) == set(getattr(user.task, "class_names", ()))


# -- refusals: one line, exit code 2, nothing written ------------------------------------------------------
def tfxp_init(capsys, name, csv_path, label, parent, output_root):
    code = cli.main(["init", name, "--csv", str(csv_path), "--label", label, "--dir", str(parent),
                     "--output-root", str(output_root)])
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.fixture
def places(tmp_path):
    """(parent dir, output root, a good CSV); the parent starts empty and the output root absent."""
    parent = tmp_path / "packages"
    parent.mkdir()
    good = write_csv(tmp_path / "good.csv", {"x": [str(i) for i in range(ROWS)], "y": label_column(["a", "b"])})
    return parent, tmp_path / "runs", good


def assert_refused(code, lines, fragment, parent, output_root):
    assert code == 2 and len(lines) == 1 and fragment in lines[0], lines
    assert os.listdir(parent) == [] and not output_root.exists()


def test_refuses_a_package_folder_that_exists(capsys, places):
    parent, output_root, good = places
    (parent / "mine").mkdir()
    code, lines = tfxp_init(capsys, "mine", good, "y", parent, output_root)
    assert code == 2 and len(lines) == 1 and f"{parent / 'mine'} exists" in lines[0], lines
    assert os.listdir(parent) == ["mine"] and os.listdir(parent / "mine") == [] and not output_root.exists()


def test_refuses_a_data_folder_that_exists(capsys, places):
    parent, output_root, good = places
    (output_root / "data" / "mine").mkdir(parents=True)
    code, lines = tfxp_init(capsys, "mine", good, "y", parent, output_root)
    assert code == 2 and len(lines) == 1 and f"{output_root / 'data' / 'mine'} exists" in lines[0], lines
    assert os.listdir(parent) == [] and os.listdir(output_root / "data" / "mine") == []


@pytest.mark.parametrize("name", ["my-package", "1st", "class", "_private"])
def test_refuses_a_name_that_is_not_a_python_identifier(capsys, places, name):
    parent, output_root, good = places
    assert_refused(*tfxp_init(capsys, name, good, "y", parent, output_root), "expected a Python identifier",
                   parent, output_root)


@pytest.mark.parametrize("name", ["components", "pipeline", "data", "serving", "tests", "bench", "json",
                                  "synth_binary"])
def test_refuses_a_name_that_an_importable_module_has(capsys, places, name):
    parent, output_root, good = places
    assert_refused(*tfxp_init(capsys, name, good, "y", parent, output_root), "importable already",
                   parent, output_root)


def test_refuses_a_csv_without_the_label_column(capsys, places):
    parent, output_root, good = places
    assert_refused(*tfxp_init(capsys, "mine", good, "price", parent, output_root), "no label column 'price'",
                   parent, output_root)


def test_refuses_a_label_with_one_value(capsys, places, tmp_path):
    parent, output_root, _ = places
    path = write_csv(tmp_path / "one.csv", {"x": [str(i) for i in range(ROWS)], "y": ["a"] * ROWS})
    assert_refused(*tfxp_init(capsys, "mine", path, "y", parent, output_root), "one value ('a') in every row",
                   parent, output_root)


def test_refuses_a_row_without_a_label_naming_its_line(capsys, places, tmp_path):
    parent, output_root, _ = places
    path = write_csv(tmp_path / "gap.csv", {"x": [str(i) for i in range(ROWS)],
                                            "y": ["a", "b", "", "a"] + label_column(["a", "b"])[4:]})
    assert_refused(*tfxp_init(capsys, "mine", path, "y", parent, output_root), "gap.csv, line 4: the label column",
                   parent, output_root)


def test_refuses_a_string_label_with_too_many_values_to_be_classes(capsys, places, tmp_path):
    parent, output_root, _ = places
    path = write_csv(tmp_path / "many.csv", {"x": [str(i) for i in range(ROWS)], "y": [f"c{i}" for i in range(ROWS)]})
    assert_refused(*tfxp_init(capsys, "mine", path, "y", parent, output_root), "too many to be classes",
                   parent, output_root)


@pytest.mark.parametrize("text, fragment", [
    (None, "file not found"),
    ("x,y\n", "no data rows"),
    ("x,y\n1,a\n2,b,extra\n", "line 3: expected 2 cells"),
])
def test_refuses_a_bad_csv(capsys, places, tmp_path, text, fragment):
    parent, output_root, _ = places
    path = tmp_path / "bad.csv"
    if text is not None:
        path.write_text(text)
    assert_refused(*tfxp_init(capsys, "mine", path, "y", parent, output_root), fragment, parent, output_root)


# -- the package it writes ---------------------------------------------------------------------------------
NAME = "loans_from_init"  # load_user_code caches by name: one name for this module


@pytest.fixture(scope="module")
@uses("beam")
def written(tmp_path_factory):
    """tfxp init on synth_binary's CSV (every dtype, and an unused column) into a temporary folder."""
    tmp = tmp_path_factory.mktemp("init")
    (tmp / "packages").mkdir()
    csv_path = synthetic.write_csv(tmp / "loans.csv", load_user_code("synth_binary"), 300)
    result = init_package.init_package(NAME, csv_path, "defaulted", parent=str(tmp / "packages"),
                                       output_root=str(tmp / "runs"))
    return result


@pytest.fixture
def importable(written, monkeypatch):
    monkeypatch.syspath_prepend(os.path.dirname(written.package_dir))
    yield written
    for module in [m for m in sys.modules if m == NAME or m.startswith(NAME + ".")]:
        del sys.modules[module]


def test_the_written_features_py_loads_as_the_platform_loads_a_user_package(importable):
    user = load_user_code(NAME)
    assert list(user.features) == importable.inference.features and user.task == importable.inference.task


def test_the_written_config_passes_the_config_check_and_points_at_the_package_data_and_schema(importable):
    from pipeline.config import load_config
    cfg = load_config(importable.config_path)
    assert (cfg.pipeline_name, cfg.user_package) == (NAME, NAME) and cfg.evaluation.threshold is None
    assert (cfg.resolved_data_root, cfg.resolved_schema_path) == (importable.data_root, importable.schema_path)


def test_every_csv_row_is_converted_and_the_schema_keeps_the_label_out_of_serving(written):
    import tensorflow_data_validation as tfdv
    assert len(read_examples(os.path.join(written.data_root, "*", "*"))) == 300
    label = next(f for f in tfdv.load_schema_text(written.schema_path).feature if f.name == "defaulted")
    assert list(label.not_in_environment) == ["SERVING"]


def test_model_py_is_the_sample_s_and_preprocessing_maps_the_label_values(written):
    with open(os.path.join(written.package_dir, "model.py")) as f, open(init_package.SAMPLE_MODEL) as sample:
        assert f.read() == sample.read()
    with open(os.path.join(written.package_dir, "preprocessing.py")) as f:
        assert 'transforms.class_index(inputs["defaulted"], features.LABEL_VALUES)' in f.read()


def test_it_prints_what_it_wrote_and_the_commands_that_start_the_loop(written):
    text = init_package.describe(written)
    config = os.path.join(NAME, "config.yaml")
    assert re.search(rf"tfxp dev --config \S*{config}\n", text) and re.search(rf"tfxp run --config \S*{config}$", text)
    assert "is not on the Python path: export PYTHONPATH=" in text  # a folder outside the project
    assert "binary classification of 'defaulted'" in text and "signature  bytes  unused" in text
