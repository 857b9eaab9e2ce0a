"""What each component's code fingerprint covers: an edit to any file it can run re-runs it."""
import os
import textwrap

from components.core.user_code import load_user_code
from components.training import launcher
from pipeline import code_fingerprint as cf
from tests.conftest import DATASETS_DIR

ROOT = os.path.dirname(cf.PLATFORM_DIR)


def _names(files):
    return {os.path.relpath(p, DATASETS_DIR if p.startswith(DATASETS_DIR) else ROOT) for p in files}


def test_the_trainer_reaches_every_training_module_even_one_run_only_as_a_worker_process():
    files = _names(cf.platform_files("core", "training") | cf.user_package_reach("components"))
    assert {"components/training/worker.py", "components/training/launcher.py", "components/training/trainer.py",
            "components/training/qat.py",
            "components/model.py", "components/features.py", "components/preprocessing.py"} <= files
    assert not any(f.startswith("components/custom/") for f in files)


def test_transform_reaches_preprocessing_and_what_it_imports_but_not_the_model():
    files = _names(cf.user_module_closure("components", "preprocessing"))
    assert {"components/preprocessing.py", "components/features.py", "components/core/transforms.py"} <= files
    assert "components/model.py" not in files
    assert not any(f.startswith("components/training/") for f in files)


def test_a_model_that_reuses_another_package_s_model_reaches_it():
    files = _names(cf.user_package_reach("synth_binary"))
    assert {"synth_binary/model.py", "components/model.py"} <= files


def test_lazy_attributes_of_the_package_are_not_dependencies():
    # components/__init__.py exposes the custom artifact types in a PEP 562 __getattr__.
    assert not any("custom" in f for f in _names(cf.import_closure(["components"], [cf.PLATFORM_DIR])))


def test_an_import_inside_a_function_is_followed(tmp_path, monkeypatch):
    pkg = tmp_path / "pkg_lazy"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "features.py").write_text(textwrap.dedent("""
        from components.core import FLOAT, NUMERIC, LABEL_SOURCE, Feature, Regression
        FEATURES = [Feature("x", FLOAT, NUMERIC), Feature("y", FLOAT, LABEL_SOURCE)]
        TASK = Regression(label="y")
    """))
    (pkg / "helpers.py").write_text("SCALE = 2\n")
    (pkg / "model.py").write_text("")
    (pkg / "preprocessing.py").write_text("def preprocessing_fn(inputs):\n    from . import helpers\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    load_user_code.cache_clear()
    files = {os.path.basename(f) for f in cf.user_module_closure("pkg_lazy", "preprocessing")}
    assert files == {"__init__.py", "preprocessing.py", "helpers.py"}
    before = cf.transform_fingerprint("pkg_lazy")
    (pkg / "helpers.py").write_text("SCALE = 3\n")
    assert cf.transform_fingerprint("pkg_lazy") != before


def test_each_component_s_fingerprint_changes_only_with_its_own_files(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("A = 1\n")
    b.write_text("B = 1\n")
    both, only_a = cf.fingerprint([a, b]), cf.fingerprint([a])
    b.write_text("B = 2\n")
    assert cf.fingerprint([a, b]) != both and cf.fingerprint([a]) == only_a


def test_workers_can_import_the_user_package_wherever_it_lives():
    path = launcher.worker_environment("synth_binary")["PYTHONPATH"].split(os.pathsep)
    assert path[0] == DATASETS_DIR
