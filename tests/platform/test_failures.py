"""When the input or the run goes wrong, `tfxp run` says what broke in one line and loses nothing.

Bad data is caught before the pipeline starts (no Beam traceback, nothing pushed); a run killed
mid-Trainer is cleaned up by the next one; a second run on the same pipeline refuses at once.
"""
import gzip
import os
import re
import signal
import subprocess
import sys
import time
import zlib

import pytest
import yaml

from pipeline import cli, run_guard, run_summary
from pipeline.config import load_config
from serving import predict
from tests.conftest import write_csv_slice
from tests.support.marks import uses
from tests.support.sample_run import write_config


def _user_config(tmp_path, data_root, source_csv=None):
    """A config whose data_root is the user's (outside output_root), with the sample's CSV configured."""
    config = {"pipeline_name": "mine", "data_root": str(data_root), "output_root": str(tmp_path / "runs"),
              "source_csv": source_csv, "schema_path": load_config().resolved_schema_path}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


@pytest.mark.parametrize("state", ["missing", "empty"])
def test_a_missing_or_empty_data_root_is_an_error_naming_it_not_filled_with_the_sample(tmp_path, capsys, state):
    from data import SAMPLE_CSV
    data_root = tmp_path / "my_data"
    if state == "empty":
        data_root.mkdir()
    code = cli.main(["run", "--config", _user_config(tmp_path, data_root, source_csv=SAMPLE_CSV)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and str(data_root) in err[0] and "tfxp data --csv" in err[0]
    assert not (data_root / "train").exists() and not (tmp_path / "runs" / "serving_model").exists()


@pytest.fixture(scope="module")
def good_data(tmp_path_factory):
    """Real TFRecords of 400 sample rows (gzip and uncompressed), written by the data tool."""
    tmp = tmp_path_factory.mktemp("good_data")
    csv_path = write_csv_slice(tmp / "rows.csv", 400)
    for compression in ("gzip", "none"):
        assert cli.main(["data", "--csv", csv_path, "--output", str(tmp / compression), "--shards", "2",
                         "--compression", compression]) == 0
    return tmp


def _copy_data(good_data, tmp_path, compression):
    import shutil
    data_root = tmp_path / "data"
    shutil.copytree(good_data / compression, data_root)
    return data_root


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])


def _corrupt_a_record(path):
    raw = gzip.decompress(path.read_bytes())
    damaged = bytearray(raw)
    damaged[len(raw) // 3] ^= 0xFF  # inside a record's bytes: its CRC no longer matches
    path.write_bytes(gzip.compress(bytes(damaged)))


def _break_the_gzip_stream(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage, expected", [
    (_truncate, "the gzip stream ends early (the file is truncated"),
    (_corrupt_a_record, "corrupted record (its checksum does not match"),
    (_break_the_gzip_stream, "the gzip stream is damaged (zlib: "),
])
def test_a_damaged_shard_stops_the_run_before_the_pipeline_with_one_line_naming_the_file(
        good_data, tmp_path, capsys, damage, expected):
    data_root = _copy_data(good_data, tmp_path, "gzip")
    shard = sorted((data_root / "eval").iterdir())[1]
    damage(shard)
    code = cli.main(["run", "--config", _user_config(tmp_path, data_root)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1, err
    assert err[0].startswith(f"tfxp run: error: {shard}: record ") and expected in err[0]
    # The pipeline never started: no MLMD database, nothing pushed.
    assert not (tmp_path / "runs" / "metadata" / "mine" / "metadata.db").exists()
    assert not (tmp_path / "runs" / "serving_model").exists()


def test_an_uncompressed_truncated_shard_names_the_record_where_it_breaks(good_data, tmp_path, capsys):
    from pipeline import input_check
    data_root = _copy_data(good_data, tmp_path, "none")
    shard = sorted((data_root / "train").iterdir())[0]
    records = input_check.check_file(str(shard))
    _truncate(shard)
    with pytest.raises(input_check.InputError) as error:
        input_check.check_file(str(shard))
    readable = int(str(error.value).split("(after ")[1].split(" ")[0])
    assert 0 < readable < records
    assert f"record {readable + 1} (after {readable} readable): the file ends in the middle of a record" in str(error.value)


def test_a_file_named_gz_that_is_not_gzip_is_named_as_such(good_data, tmp_path):
    from pipeline import input_check
    data_root = _copy_data(good_data, tmp_path, "none")
    shard = sorted((data_root / "train").iterdir())[0]
    renamed = shard.with_name(shard.name + ".gz")
    shard.rename(renamed)
    with pytest.raises(input_check.InputError, match="named .gz but is not gzip-compressed"):
        input_check.check_file(str(renamed))


def test_a_checked_shard_is_not_read_again_until_it_changes(good_data, tmp_path):
    from pipeline import input_check
    data_root = _copy_data(good_data, tmp_path, "gzip")
    stamp = str(tmp_path / "stamp.json")
    counts = input_check.check_data_root(str(data_root), stamp)
    assert sum(counts.values()) == 400
    shard = sorted((data_root / "train").iterdir())[0]
    _truncate(shard)
    os.utime(shard, ns=(0, 0))  # size and time both change: the stamp no longer matches
    with pytest.raises(input_check.InputError, match=str(shard)):
        input_check.check_data_root(str(data_root), stamp)


def test_a_gzip_shard_cut_between_two_records_is_found_truncated(good_data, tmp_path):
    """TensorFlow's reader ends quietly when a cut gzip stream happens to end between records."""
    from pipeline import input_check
    data_root = _copy_data(good_data, tmp_path, "gzip")
    shard = sorted((data_root / "train").iterdir())[0]
    raw = gzip.decompress(shard.read_bytes())
    deflate = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    # The whole records, flushed to a byte boundary, and no gzip trailer: what a copy stopped there leaves.
    shard.write_bytes(deflate.compress(raw) + deflate.flush(zlib.Z_SYNC_FLUSH))
    with pytest.raises(input_check.InputError, match="the gzip stream ends early"):
        input_check.check_file(str(shard))


@pytest.mark.beam
def test_a_beam_failure_on_bad_input_is_summarised_in_one_line(good_data, tmp_path):
    """Where the input is read by Beam after all (files changed mid-run), its 60-line error becomes one line."""
    import apache_beam as beam
    from pipeline.local_runner import summarize_exception
    data_root = _copy_data(good_data, tmp_path, "none")
    shard = sorted((data_root / "train").iterdir())[0]
    _truncate(shard)
    with pytest.raises(Exception) as raised:
        with beam.Pipeline(argv=["--direct_running_mode=in_memory"]) as p:
            _ = p | beam.io.ReadFromTFRecord(str(shard)) | beam.combiners.Count.Globally()
    assert shard.name not in str(raised.value)  # Beam's error: a hex dump that never names the file
    line, is_input = summarize_exception(raised.value)
    assert is_input and "\n" not in line and len(line) <= 300 and line.startswith("an input file is truncated")


def _start_run(config_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.Popen([sys.executable, "-m", "pipeline.cli", "run", "--config", config_path],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            cwd=os.path.dirname(config_path), start_new_session=True)


def _wait_for_state(cfg, node, state, process, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[1][-3000:]
        if os.path.exists(cfg.resolved_metadata_path):
            try:
                if run_summary.latest_run_states(cfg.resolved_metadata_path, cfg.pipeline_name).get(node) == state:
                    return
            except Exception:  # the database is being written: read again
                pass
        time.sleep(0.3)
    raise AssertionError(f"{node} never reached {state}")


def _executions(cfg, node):
    store = run_summary.open_store(cfg.resolved_metadata_path)
    context = store.get_context_by_type_and_name("node", f"{cfg.pipeline_name}.{node}")
    return store.get_executions_by_context(context.id)


@pytest.fixture(scope="module")
@uses("e2e")
def killed_then_rerun(tmp_path_factory):
    """A run killed (SIGKILL) during the Trainer, a second run started meanwhile, then a rerun."""
    tmp = tmp_path_factory.mktemp("killed")
    config_path = write_config(tmp, write_csv_slice(tmp / "slice.csv", 600), name="killed",
                               training={"train_steps": 3000, "eval_steps": 10, "batch_size": 32},
                               tflite={"enabled": False})
    cfg = load_config(config_path)
    first = _start_run(config_path)
    try:
        _wait_for_state(cfg, "Trainer", "RUNNING", first)
        second = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--config", config_path],
                                capture_output=True, text=True, timeout=300, cwd=str(tmp),
                                env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
        assert first.poll() is None, "the first run ended before it could be killed"
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    abandoned = [e for e in _executions(cfg, "Trainer") if e.last_known_state == e.RUNNING]
    leftovers = [p for p in (tmp / "runs" / "pipelines" / "killed" / "Trainer").glob(f"*/{abandoned[0].id}")]
    with open(config_path) as f:  # the rerun trains briefly: what matters is that it completes
        config = yaml.safe_load(f)
    config["training"]["train_steps"] = 60
    with open(config_path, "w") as f:
        yaml.safe_dump(config, f)
    rerun = subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--config", config_path],
                           capture_output=True, text=True, timeout=1200, cwd=str(tmp),
                           env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    return {"cfg": cfg, "first_pid": first.pid, "second": second,
            "abandoned": abandoned, "leftovers": leftovers, "rerun": rerun}


@pytest.mark.e2e
def test_a_second_run_on_the_same_pipeline_refuses_at_once_naming_the_first(killed_then_rerun):
    second = killed_then_rerun["second"]
    assert second.returncode == 2
    assert [line for line in second.stderr.splitlines() if line.startswith("tfxp")] == [
        f"tfxp run: error: another tfxp run (pid {killed_then_rerun['first_pid']}) is running pipeline 'killed' on "
        f"{killed_then_rerun['cfg'].resolved_metadata_path}: wait for it to finish, or stop it "
        f"(kill {killed_then_rerun['first_pid']}) and run again"]


@pytest.mark.e2e
def test_the_run_after_a_killed_one_completes_and_marks_the_killed_execution_abandoned(killed_then_rerun):
    cfg, rerun = killed_then_rerun["cfg"], killed_then_rerun["rerun"]
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert killed_then_rerun["abandoned"] and killed_then_rerun["leftovers"]
    killed = {e.id: e for e in _executions(cfg, "Trainer")}[killed_then_rerun["abandoned"][0].id]
    assert killed.last_known_state == killed.CANCELED
    assert "stopped before it finished" in killed.custom_properties["abandoned_by"].string_value
    assert not any(path.exists() for path in killed_then_rerun["leftovers"])
    store = run_summary.open_store(cfg.resolved_metadata_path)
    assert not [e for e in store.get_executions() if e.last_known_state in (e.NEW, e.RUNNING)]
    assert predict.latest_version(cfg.serving_model_dir) is not None


@pytest.mark.e2e
def test_the_run_shows_one_line_per_component_and_keeps_the_full_log_in_a_file(killed_then_rerun):
    cfg, rerun = killed_then_rerun["cfg"], killed_then_rerun["rerun"]
    progress = [re.match(r"^  \[\s*(\d+)/(\d+)\] (\S+)\s+(executed|cached)\s+[\d.]+ s$", line)
                for line in rerun.stdout.splitlines() if line.startswith("  [")]
    assert all(progress) and sorted(int(m[1]) for m in progress) == list(range(1, 12))
    states = {m[3]: (int(m[1]), int(m[2]), m[4]) for m in progress}  # lines of components run at once may swap
    assert states["ImportExampleGen"] == (1, 11, "cached") and states["Transform"][2] == "cached"
    assert states["Trainer"][2] == "executed" and states["pusher"][2] == "executed"
    assert len(rerun.stdout.splitlines()) < 40 and len(rerun.stderr.splitlines()) < 10, rerun.stderr[-2000:]
    log_path = rerun.stdout.split("full log: ")[1].split(")")[0]
    with open(log_path) as f:
        log = f.read()
    assert "Component Trainer is running." in log and "Component pusher is finished." in log
    assert os.path.realpath(os.path.join(os.path.dirname(log_path), "latest.log")) == log_path


def test_a_pusher_killed_mid_copy_leaves_no_version_behind(tmp_path):
    """A killed Pusher's execution stays RUNNING and its version folder half-copied: the next run removes it."""
    from ml_metadata import metadata_store
    from ml_metadata.proto import metadata_store_pb2

    metadata_path = str(tmp_path / "metadata.db")
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    store = metadata_store.MetadataStore(config)
    pipeline_type = store.put_context_type(metadata_store_pb2.ContextType(name="pipeline"))
    node_type = store.put_context_type(metadata_store_pb2.ContextType(name="node"))
    pusher_type = store.put_execution_type(metadata_store_pb2.ExecutionType(name="tfx.components.pusher.component.Pusher"))
    pushed_type = store.put_artifact_type(metadata_store_pb2.ArtifactType(name="PushedModel"))
    contexts = store.put_contexts([metadata_store_pb2.Context(type_id=pipeline_type, name="p"),
                                   metadata_store_pb2.Context(type_id=node_type, name="p.pusher")])
    serving = tmp_path / "serving" / "p"
    complete = serving / "1000"
    (complete / "variables").mkdir(parents=True)
    (complete / "saved_model.pb").write_bytes(b"pb")
    published = metadata_store_pb2.Artifact(type_id=pushed_type, uri=str(tmp_path / "push"))
    published.custom_properties["pushed_destination"].string_value = str(complete)
    store.put_artifacts([published])
    execution = metadata_store_pb2.Execution(type_id=pusher_type, last_known_state=metadata_store_pb2.Execution.RUNNING)
    [execution_id] = store.put_executions([execution])
    store.put_attributions_and_associations([], [metadata_store_pb2.Association(context_id=c, execution_id=execution_id)
                                                 for c in contexts])
    half_copied = serving / str(int(time.time()) + 1)
    (half_copied / "variables").mkdir(parents=True)  # saved_model.pb is copied last: not there yet
    recovered = run_guard.recover_abandoned(metadata_path, "p", str(tmp_path / "root"), [str(serving)])
    assert any(f"incomplete pushed version {half_copied}" in line for line in recovered)
    assert not half_copied.exists() and (complete / "saved_model.pb").exists()
    [after] = store.get_executions_by_id([execution_id])
    assert after.last_known_state == metadata_store_pb2.Execution.CANCELED
