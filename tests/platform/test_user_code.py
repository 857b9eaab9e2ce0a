"""The data scientist's package: what the platform accepts, and the clear error for what it does not."""
import textwrap

import pytest

from components.core import feature as F
from components.core.task import BinaryClassification, MulticlassClassification, Regression
from components.core.user_code import UserCodeError, load_user_code
from tests.conftest import TASK_PACKAGES


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="x", dtype="int32", kind=F.NUMERIC), "dtype"),
    (dict(name="x", dtype=F.FLOAT, kind="fancy"), "unknown kind"),
    (dict(name="x", dtype=F.INT64, kind=F.CATEGORICAL), "num_buckets"),
    (dict(name="x", dtype=F.FLOAT, kind=F.CATEGORICAL, num_buckets=3), "needs dtype int64"),
    (dict(name="x", dtype=F.BYTES, kind=F.NUMERIC), "numeric dtype"),
    (dict(name="x", dtype=F.FLOAT, kind=F.UNUSED, encoding=F.ENCODING_BASE64), "base64"),
])
def test_invalid_feature_declarations_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        F.Feature(**kwargs)


@pytest.mark.parametrize("features, message", [
    ([F.Feature("a", F.FLOAT, F.NUMERIC), F.Feature("a", F.FLOAT, F.NUMERIC)], "declared twice"),
    ([F.Feature("a", F.FLOAT, F.UNUSED)], "no feature is a model input"),
    ([F.Feature("a", F.FLOAT, F.NUMERIC), F.Feature("a_xf", F.FLOAT, F.NUMERIC)], "end in '_xf'"),
])
def test_feature_lists_the_pipeline_cannot_use_are_rejected(features, message):
    with pytest.raises(ValueError, match=message):
        F.check_feature_list(features)


@pytest.mark.parametrize("package, task_type", zip(TASK_PACKAGES, [BinaryClassification, MulticlassClassification,
                                                                    Regression]))
def test_each_test_dataset_declares_its_task(package, task_type):
    user = load_user_code(package)
    assert isinstance(user.task, task_type)
    assert user.preprocessing_fn == f"{package}.preprocessing.preprocessing_fn"
    assert user.task.label in user.label_source_names
    assert set(user.slice_features) <= set(user.feature_by_name)


def _package(tmp_path, monkeypatch, name, features_py, files=("preprocessing", "model")):
    pkg = tmp_path / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "features.py").write_text(features_py)
    for module in files:
        (pkg / f"{module}.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    load_user_code.cache_clear()
    return name


GOOD_FEATURES = textwrap.dedent("""
    from components.core import FLOAT, NUMERIC, LABEL_SOURCE, Feature, Regression
    FEATURES = [Feature("x", FLOAT, NUMERIC), Feature("y", FLOAT, LABEL_SOURCE)]
    TASK = Regression(label="y")
""")


def test_a_package_with_the_three_files_loads(tmp_path, monkeypatch):
    user = load_user_code(_package(tmp_path, monkeypatch, "pkg_good", GOOD_FEATURES))
    assert user.task == Regression(label="y") and user.slice_features == ()
    assert [f.name for f in user.model_features] == ["x"]


@pytest.mark.parametrize("name, features_py, files, message", ids=lambda v: v if isinstance(v, str) and
                         v.startswith("pkg_") else "", argvalues=[
    ("pkg_no_model", GOOD_FEATURES, ("preprocessing",), "missing model.py"),
    ("pkg_no_task", "from components.core import FLOAT, NUMERIC, Feature\nFEATURES = [Feature('x', FLOAT, NUMERIC)]\n",
     ("preprocessing", "model"), "pkg_no_task/features.py: must define TASK"),
    ("pkg_bad_task", GOOD_FEATURES + "TASK = 'regression'\n", ("preprocessing", "model"),
     "TASK must be one of BinaryClassification, MulticlassClassification, Regression"),
    ("pkg_bad_slice", GOOD_FEATURES + "SLICE_FEATURES = ['hour']\n", ("preprocessing", "model"),
     "SLICE_FEATURES names 'hour', not in FEATURES"),
    ("pkg_bad_feature", GOOD_FEATURES.replace('"x", FLOAT, NUMERIC', '"x", "double", NUMERIC'),
     ("preprocessing", "model"), "pkg_bad_feature/features.py: feature 'x': dtype"),
])
def test_a_broken_package_is_a_clear_error_naming_the_file(tmp_path, monkeypatch, name, features_py, files, message):
    with pytest.raises(UserCodeError, match=message):
        load_user_code(_package(tmp_path, monkeypatch, name, features_py, files))


def test_an_unknown_package_is_a_clear_error():
    with pytest.raises(UserCodeError, match="user_package 'no_such_package': no such Python package"):
        load_user_code("no_such_package")


def test_multiclass_needs_three_distinct_classes():
    with pytest.raises(ValueError, match="at least 3 classes"):
        MulticlassClassification(label="y", class_names=("a", "b"))
    with pytest.raises(ValueError, match="repeat"):
        MulticlassClassification(label="y", class_names=("a", "b", "a"))
    assert MulticlassClassification(label="y", num_classes=3).class_names == ("0", "1", "2")
