"""The parts of `tfxp dev` that need no pipeline: the watcher, the reload of the user's modules, the
history's record of a run, the summary's lines. (The loop itself, end to end: tests/sample/test_dev_loop.py,
tests/platform/test_dev_multiclass.py.)"""
import importlib
import os
import sys
import threading
import time

import pytest

from components.core.user_code import UserCodeError, load_user_code
from pipeline import history
from pipeline.dev import reload, summary
from pipeline.dev.watch import Watcher
from pipeline.run_outcome import Outcome


# -- the watcher ---------------------------------------------------------------------------------------

def _watcher(paths):
    watcher = Watcher(lambda: paths, poll_seconds=0.02, quiet_seconds=0.2)
    watcher.mark()
    return watcher


def test_a_save_with_new_content_is_a_change_once_the_files_are_quiet(tmp_path):
    model, features = tmp_path / "model.py", tmp_path / "features.py"
    model.write_text("A = 1\n")
    features.write_text("B = 1\n")
    watcher = _watcher([str(model), str(features)])

    def save_twice():
        model.write_text("A = 2\n")
        time.sleep(0.05)
        features.write_text("B = 2\n")  # the same save, as an editor or a checkout writes several files

    threading.Timer(0.1, save_twice).start()
    assert sorted(watcher.wait()) == sorted([str(model), str(features)])


def test_a_touch_or_a_save_of_the_same_bytes_is_no_change(tmp_path):
    model = tmp_path / "model.py"
    model.write_text("A = 1\n")
    watcher = _watcher([str(model)])
    time.sleep(0.02)
    model.write_text("A = 1\n")
    os.utime(model, None)
    assert watcher.changed() == []


def test_a_file_replaced_by_a_rename_counts_as_a_change(tmp_path):
    model = tmp_path / "model.py"
    model.write_text("A = 1\n")
    watcher = _watcher([str(model)])
    (tmp_path / "model.py.tmp").write_text("A = 3\n")
    os.replace(tmp_path / "model.py.tmp", model)
    assert watcher.changed() == [str(model)]


def test_waiting_ends_with_nothing_when_the_loop_is_stopped(tmp_path):
    model = tmp_path / "model.py"
    model.write_text("A = 1\n")
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    assert _watcher([str(model)]).wait(stop) == []


# -- reloading the user's files ------------------------------------------------------------------------

@pytest.fixture
def package(tmp_path):
    root = tmp_path / "code"
    pkg = root / "reloaded_pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    source = load_user_code("synth_binary").directory
    for name in ("features.py", "preprocessing.py", "model.py"):
        (pkg / name).write_text(open(os.path.join(source, name)).read())
    (pkg / "extra.py").write_text("VALUE = 1\n")
    sys.path.insert(0, str(root))
    yield pkg
    sys.path.remove(str(root))
    for name in [n for n in sys.modules if n.startswith("reloaded_pkg")]:
        del sys.modules[name]
    load_user_code.cache_clear()


def test_forgotten_user_modules_are_imported_again_from_disk(package):
    assert importlib.import_module("reloaded_pkg.extra").VALUE == 1
    (package / "extra.py").write_text("VALUE = 2\n")
    forgotten = reload.forget_user_code("reloaded_pkg", [str(package / "extra.py")])
    assert "reloaded_pkg.extra" in forgotten and "components.core" not in forgotten
    assert importlib.import_module("reloaded_pkg.extra").VALUE == 2


def test_the_platform_is_never_forgotten():
    import components.core.feature as platform_module

    reload.forget_user_code("components", [platform_module.__file__])
    assert sys.modules["components.core.feature"] is platform_module and "components" in sys.modules
    assert reload.platform_files([platform_module.__file__]) == {os.path.abspath(platform_module.__file__)}


def test_a_syntax_error_is_a_user_code_error_naming_the_file_and_line(package):
    (package / "model.py").write_text("HIDDEN_UNITS = (64, 32\n\ndef f():\n    pass\n")
    with pytest.raises(UserCodeError, match=r"^reloaded_pkg/model.py, line \d+: SyntaxError: "):
        reload.check_syntax([str(package / "model.py")], str(package.parent))


# -- the history of runs -------------------------------------------------------------------------------

def _record(run_id, files, config, value, pushed="1796240000", outcome="pushed"):
    return history.Record(run_id=run_id, by="dev", files=files, config=config, gate_metric="accuracy",
                          gate_value=value, blessed=True, infra_blessed=True, pushed=pushed, outcome=outcome,
                          seconds=12.5)


def test_the_changes_between_two_runs_are_the_files_edited_and_the_config_keys_with_their_values():
    before = _record("a", {"pkg/model.py": "1", "pkg/features.py": "2"}, {"training.train_steps": 1000}, 0.8)
    after = _record("b", {"pkg/model.py": "9", "pkg/features.py": "2"}, {"training.train_steps": 200}, 0.81)
    assert history.changes(before, after) == ["model.py", "training.train_steps 1000 -> 200"]
    assert history.changes(after, after) == ["nothing"] and history.changes(None, after) == ["(first run)"]


def test_a_record_survives_the_round_trip_through_mlmd_on_its_run(tmp_path):
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    path = str(tmp_path / "metadata.db")  # MLMD as TFX makes it: a pipeline context, a run context, an execution
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
    store = metadata_store.MetadataStore(config)
    types = {name: store.put_context_type(metadata_store_pb2.ContextType(name=name))
             for name in ("pipeline", "pipeline_run")}
    execution_type = store.put_execution_type(metadata_store_pb2.ExecutionType(name="Trainer"))
    pipeline_id, run_id = store.put_contexts([metadata_store_pb2.Context(type_id=types["pipeline"], name="p"),
                                              metadata_store_pb2.Context(type_id=types["pipeline_run"], name="r1")])
    [execution] = store.put_executions([metadata_store_pb2.Execution(type_id=execution_type)])
    store.put_attributions_and_associations([], [metadata_store_pb2.Association(context_id=c, execution_id=execution)
                                                 for c in (pipeline_id, run_id)])
    record = _record("r1", {"pkg/model.py": "1"}, {"training.train_steps": 1000}, 0.8512)
    history.save_record(path, "p", record)
    [(name, read)] = history.read_records(path, "p")
    assert name == "r1" and read == record


def test_the_history_table_has_a_line_per_run_with_what_changed_the_metric_and_the_push():
    records = [("r1", _record("r1", {"m": "1"}, {}, 0.8)),
               ("r2", None),
               ("r3", _record("r3", {"m": "2"}, {}, 0.7, pushed=None, outcome="not pushed: the Evaluator ..."))]
    lines = history.format_history(records).splitlines()
    assert lines[0].split() == ["run", "by", "changed", "since", "the", "one", "before", "accuracy", "blessed",
                                "pushed", "seconds"]
    assert "(first run)" in lines[1] and "0.8000" in lines[1] and "1796240000" in lines[1]
    assert "not recorded" in lines[2]
    assert lines[3].split()[2] == "m" and "0.7000" in lines[3] and "not pushed" in lines[3]


# -- the summary -----------------------------------------------------------------------------------------

def _outcome(value, slices):
    return Outcome(run_id="r", components=[("Trainer", "executed", 12.0), ("Transform", "cached", 0.1)],
                   gate_metric="accuracy", higher_is_better=True, gate_value=value,
                   slices={"Overall": (value, 1000), **slices}, evaluated=True, blessed=True, infra_blessed=True,
                   infra_reason="", pushed="1796240001", push_cached=False, why_not_pushed="")


def test_the_gate_line_compares_with_the_previous_iteration_and_names_the_slices_that_moved_most():
    before = _outcome(0.8903, {"hour:3": (0.8125, 144), "hour:4": (0.70, 90), "hour:5": (0.5, 10)})
    after = _outcome(0.8951, {"hour:3": (0.8611, 144), "hour:4": (0.69, 90), "hour:5": (0.5, 10)})
    line = summary.gate_line(after, before)
    assert line.startswith("accuracy 0.8903 -> 0.8951 (+0.0048); moved most: hour:3 0.8125 -> 0.8611 (+0.0486, "
                           "144 examples), hour:4 0.7000 -> 0.6900 (-0.0100, 90 examples)")
    assert "hour:5" not in line and summary.gate_line(after, None) == "accuracy 0.8951"


def test_an_iteration_that_failed_says_what_and_that_the_served_version_still_serves():
    iteration = summary.Iteration(number=3, changed=["/x/model.py"], seconds=0.4,
                                  error="pkg/model.py, line 3: SyntaxError: invalid syntax", served=1796240001)
    assert summary.header(iteration) == "iteration 3 (model.py changed)"
    assert summary.format_result(iteration, None, "here").splitlines() == [
        "  error: pkg/model.py, line 3: SyntaxError: invalid syntax",
        "  (version 1796240001 still serves; fix it and save: the loop reruns)",
        "  done in 0.4 s"]
