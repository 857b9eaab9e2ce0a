import os

from pipeline import code_fingerprint as cf


def _names(files):
    return {os.path.relpath(p, os.path.dirname(os.path.dirname(cf.__file__))) for p in files}


def test_trainer_fingerprint_covers_the_model_and_feature_list():
    files = _names(cf.project_source_files("components.trainer"))
    assert {"components/trainer.py", "components/model.py", "components/features.py",
            "components/__init__.py"} <= files


def test_preprocessing_fingerprint_does_not_cover_the_model():
    files = _names(cf.project_source_files("components.preprocessing"))
    assert "components/preprocessing.py" in files and "components/features.py" in files
    assert "components/model.py" not in files and "components/trainer.py" not in files


def test_fingerprint_changes_when_an_imported_module_changes(tmp_path, monkeypatch):
    pkg = tmp_path / "components"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "model.py").write_text("UNITS = 8\n")
    (pkg / "trainer.py").write_text("from components import model\n")
    (pkg / "preprocessing.py").write_text("X = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(cf, "_source_file", lambda m: _tmp_source(tmp_path, m))
    trainer_before = cf.module_fingerprint("components.trainer")
    preprocessing_before = cf.module_fingerprint("components.preprocessing")
    (pkg / "model.py").write_text("UNITS = 16\n")
    assert cf.module_fingerprint("components.trainer") != trainer_before
    assert cf.module_fingerprint("components.preprocessing") == preprocessing_before


def _tmp_source(root, module):
    path = root.joinpath(*module.split("."))
    if (path / "__init__.py").exists():
        return str(path / "__init__.py")
    return str(path.with_suffix(".py")) if path.with_suffix(".py").exists() else None


def test_imports_inside_functions_are_not_dependencies(tmp_path, monkeypatch):
    pkg = tmp_path / "components"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("def __getattr__(name):\n    from components import model\n")
    (pkg / "model.py").write_text("UNITS = 8\n")
    (pkg / "preprocessing.py").write_text("X = 1\n")
    monkeypatch.setattr(cf, "_source_file", lambda m: _tmp_source(tmp_path, m))
    files = {os.path.basename(p) for p in cf.project_source_files("components.preprocessing")}
    assert files == {"__init__.py", "preprocessing.py"}
