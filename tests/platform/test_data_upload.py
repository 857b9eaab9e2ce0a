"""`tfxp upload`: what `tfxp data` wrote, copied to a gs:// data_root (a local fake GCS), each file
whole, a second time nothing, stale shards refused."""
import os
import time

import pytest
import tensorflow as tf

from components.core.user_code import load_user_code
from pipeline import cli
from tests.conftest import write_csv_slice
from tests.support.fake_gcs import FakeGCS


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """`tfxp data`'s output for 300 sample rows: train/ and eval/, 2 shards each."""
    from data import tfrecords

    tmp = tmp_path_factory.mktemp("upload")
    rows = write_csv_slice(tmp / "rows.csv", 300)
    return tfrecords.convert_csv(rows, str(tmp / "data"), features=load_user_code().features, shards=2).output_dir


@pytest.fixture(scope="module")
def gcs():
    with FakeGCS() as fake:
        yield fake


def _local_files(data):
    return sorted(f"{split}/{name}" for split in ("train", "eval") for name in os.listdir(os.path.join(data, split)))


def _objects(root):
    """Every file under ``root`` (gs:// or local), relative, directory markers left out."""
    found = []
    for folder, _, names in tf.io.gfile.walk(root):
        found += [f"{folder.rstrip('/')}/{n}"[len(root.rstrip('/')) + 1:] for n in names if not n.endswith("/")]
    return sorted(found)


def _upload(source, data_root, *flags):
    return cli.main(["upload", "--from", source, "--set", f"data_root={data_root}", *flags])


def test_upload_copies_each_split_file_to_gcs_where_the_records_read_back(data, gcs, capsys):
    assert _upload(data, gcs.url("first")) == 0
    assert _objects(gcs.url("first")) == _local_files(data)
    for name in _local_files(data):
        assert tf.io.gfile.stat(gcs.url("first", name)).length == os.path.getsize(os.path.join(data, name))
    remote = next(iter(tf.data.TFRecordDataset(gcs.url("first", _local_files(data)[0]), compression_type="GZIP")))
    local = next(iter(tf.data.TFRecordDataset(os.path.join(data, _local_files(data)[0]), compression_type="GZIP")))
    assert tf.train.Example.FromString(remote.numpy()) == tf.train.Example.FromString(local.numpy())
    total = sum(os.path.getsize(os.path.join(data, name)) for name in _local_files(data))
    out = capsys.readouterr().out
    assert out.startswith(f"copied 4 file(s), {total / 1024:.1f} KB, from {data} to {gcs.url('first')} in ")


def test_a_second_upload_copies_nothing_and_says_what_it_skipped(data, gcs, capsys):
    assert _upload(data, gcs.url("second")) == 0
    before = {name: tf.io.gfile.stat(gcs.url("second", name)).mtime_nsec for name in _local_files(data)}
    capsys.readouterr()
    assert _upload(data, gcs.url("second")) == 0
    out = capsys.readouterr().out
    assert out.startswith("copied 0 file(s), 0 bytes") and "skipped 4 already there (same size, not older)" in out
    assert {name: tf.io.gfile.stat(gcs.url("second", name)).mtime_nsec for name in _local_files(data)} == before


def test_data_written_again_after_an_upload_is_copied_again(data, gcs, capsys, tmp_path):
    import shutil
    source = shutil.copytree(data, tmp_path / "data")
    assert _upload(str(source), gcs.url("again")) == 0
    later = time.time() + 60
    os.utime(source / _local_files(data)[0], (later, later))  # as `tfxp data` writing the same bytes again
    capsys.readouterr()
    assert _upload(str(source), gcs.url("again")) == 0
    out = capsys.readouterr().out
    assert out.startswith("copied 1 file(s)") and "skipped 3 already there" in out


def test_stale_shards_in_data_root_are_refused_before_copying_and_removed_with_delete(data, gcs, capsys):
    stale = gcs.url("stale", "train", "data-00003-of-00004.tfrecord.gz")
    tf.io.gfile.makedirs(gcs.url("stale", "train"))
    with tf.io.gfile.GFile(stale, "wb") as f:
        f.write(b"old shard")
    assert _upload(data, gcs.url("stale")) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"tfxp upload: error: data_root {gcs.url('stale')} holds 1 file(s) in train/eval that ")
    assert stale in line and "pass --delete to remove them" in line
    assert _objects(gcs.url("stale")) == ["train/data-00003-of-00004.tfrecord.gz"]  # nothing copied
    assert _upload(data, gcs.url("stale"), "--delete") == 0
    assert _objects(gcs.url("stale")) == _local_files(data)
    assert "deleted 1 the source does not have: data-00003-of-00004.tfrecord.gz" in capsys.readouterr().out


def test_a_local_data_root_gets_whole_files_and_no_temporary_ones(data, tmp_path):
    assert _upload(data, str(tmp_path / "mounted")) == 0
    assert _objects(str(tmp_path / "mounted")) == _local_files(data)
    for name in _local_files(data):
        with open(tmp_path / "mounted" / name, "rb") as copied, open(os.path.join(data, name), "rb") as original:
            assert copied.read() == original.read()


@pytest.mark.parametrize("case, says", [
    ("no splits", "--from {source} has no TFRecords in train/ (expected train/* and eval/*): write them with "
                  "`tfxp data"),
    ("itself", "data_root {source} is the folder being uploaded (--from)"),
    ("placeholder", "data_root gs://YOUR_BUCKET/tfx/data/chicago_taxi still holds the preset's placeholder"),
])
def test_an_upload_that_cannot_help_fails_in_one_line(data, tmp_path, capsys, case, says):
    source, args = {
        "no splits": (str(tmp_path), ["--set", f"data_root={tmp_path / 'to'}"]),
        "itself": (data, ["--set", f"data_root={data}"]),
        "placeholder": (data, []),
    }[case]
    assert cli.main(["upload", "--from", source, *args]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("tfxp upload: error: ") and says.format(source=source) in line, line
    assert not os.path.exists(tmp_path / "to")


def test_progress_is_logged_while_many_files_copy(data, tmp_path, monkeypatch, caplog):
    from pipeline import data_upload
    monkeypatch.setattr(data_upload, "PROGRESS_SECONDS", 0)  # a line after every file
    with caplog.at_level("INFO", logger="pipeline.data_upload"):
        data_upload.upload(data, str(tmp_path / "to"))
    lines = [r.getMessage() for r in caplog.records if r.name == "pipeline.data_upload"]
    assert len(lines) == 4 and lines[-1].startswith("copied 4 of 4 files (")
    assert lines[-1].endswith(str(tmp_path / "to"))


def test_a_copy_that_fails_midway_leaves_the_old_file_and_no_temporary_one(tmp_path, monkeypatch):
    from tfxp import files
    (tmp_path / "new").write_bytes(b"new bytes, all of them")
    (tmp_path / "to").mkdir()
    (tmp_path / "to" / "shard").write_bytes(b"old")

    def half_then_fail(source, target):
        with open(target, "wb") as f:
            f.write(b"new by")
        raise OSError("No space left on device")

    monkeypatch.setattr(files.shutil, "copyfile", half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        files.copy_atomically(str(tmp_path / "new"), str(tmp_path / "to" / "shard"))
    assert os.listdir(tmp_path / "to") == ["shard"] and (tmp_path / "to" / "shard").read_bytes() == b"old"


def test_a_destination_that_cannot_be_written_fails_in_one_line_saying_to_run_it_again(data, tmp_path, capsys):
    (tmp_path / "blocked").mkdir()
    (tmp_path / "blocked" / "train").write_text("a file where the split folder should be")
    assert _upload(data, str(tmp_path / "blocked")) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"tfxp upload: error: could not copy {data}/") and "run tfxp upload again" in line, line
