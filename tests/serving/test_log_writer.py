"""The request logs' files (serving/log_writer.py), without a server: TFRecords TensorFlow reads back, rotated
by size and by age, within a disk bound that deletes the oldest files first, and never half a file under a
final name (tfxp/request_logs.py reads them)."""
import os
import random
import threading
import time

import pytest

from serving.log_writer import RECORD_OVERHEAD, LogWriter, RecordTooLarge
from tfxp import request_logs

HOUR = 3600


def records(count, size=100, seed=0):
    rng = random.Random(seed)
    return [bytes(rng.getrandbits(8) for _ in range(size)) for _ in range(count)]


def files_on_disk(directory):
    """Every file under the directory, complete or temporary: {name: size}."""
    return {n: os.path.getsize(os.path.join(directory, n)) for n in os.listdir(directory)}


def read_back(prefix):
    return list(request_logs.read_records(request_logs.log_files(prefix)))


def test_tensorflow_reads_back_every_record_in_order(tmp_path):
    prefix = str(tmp_path / "logs" / "m")
    sent = [b"", b"x"] + [os.urandom(n) for n in (1, 15, 16, 255, 4096, 70_000)]
    writer = LogWriter(prefix, max_file_bytes=1 << 20, max_file_seconds=HOUR, max_total_bytes=1 << 24)
    for record in sent:
        writer.write(record)
    writer.close()
    assert read_back(prefix) == sent


def test_a_file_is_completed_before_a_record_would_take_it_past_max_file_bytes(tmp_path):
    prefix = str(tmp_path / "m")
    writer = LogWriter(prefix, max_file_bytes=1000, max_file_seconds=HOUR, max_total_bytes=1 << 20)
    sent = records(25)  # 116 bytes each on disk: 8 per file
    for record in sent:
        writer.write(record)
    writer.close()
    sizes = [os.path.getsize(f) for f in request_logs.log_files(prefix)]
    assert sizes == [8 * (100 + RECORD_OVERHEAD)] * 3 + [100 + RECORD_OVERHEAD]
    assert read_back(prefix) == sent


def test_a_record_larger_than_max_file_bytes_gets_a_file_of_its_own(tmp_path):
    prefix = str(tmp_path / "m")
    writer = LogWriter(prefix, max_file_bytes=1000, max_file_seconds=HOUR, max_total_bytes=1 << 20)
    for record in (b"a" * 10, b"b" * 5000, b"c" * 10):
        writer.write(record)
    writer.close()
    files = request_logs.log_files(prefix)
    assert [list(request_logs.read_records([f])) for f in files] == [[b"a" * 10], [b"b" * 5000], [b"c" * 10]]


def test_an_idle_file_is_completed_max_file_seconds_after_it_was_opened(tmp_path):
    prefix = str(tmp_path / "m")
    writer = LogWriter(prefix, max_file_bytes=1 << 20, max_file_seconds=0.3, max_total_bytes=1 << 20)
    writer.write(b"only one")
    assert request_logs.log_files(prefix) == [] and len(os.listdir(tmp_path)) == 1  # the temporary file
    deadline = time.monotonic() + 10
    while not request_logs.log_files(prefix) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert read_back(prefix) == [b"only one"]
    assert not [n for n in os.listdir(tmp_path) if n.endswith(request_logs.TEMP_SUFFIX)]
    writer.write(b"the next one")  # a new file
    writer.close()
    assert read_back(prefix) == [b"only one", b"the next one"] and len(request_logs.log_files(prefix)) == 2


def test_the_disk_bound_deletes_the_oldest_files_first_and_is_never_exceeded(tmp_path):
    prefix = str(tmp_path / "m")
    bound = 2000
    writer = LogWriter(prefix, max_file_bytes=500, max_file_seconds=HOUR, max_total_bytes=bound)
    sent = records(100, size=84)  # 100 bytes each on disk, 5 per file
    for record in sent:
        writer.write(record)
        assert sum(files_on_disk(tmp_path).values()) <= bound  # the file being written included
    writer.close()
    kept = read_back(prefix)
    assert len(kept) == bound // 100 and kept == sent[-len(kept):]  # the newest, in order
    assert writer.deleted == 20 - 4


def test_files_found_at_start_count_toward_the_bound_and_other_prefixes_are_left_alone(tmp_path):
    prefix, other = str(tmp_path / "m"), str(tmp_path / "m_v2")
    for name in (prefix, other):
        writer = LogWriter(name, max_file_bytes=500, max_file_seconds=HOUR, max_total_bytes=10_000)
        for record in records(20, size=84):
            writer.write(record)
        writer.close()
    assert [len(request_logs.log_files(p + "-")) for p in (prefix, other)] == [4, 4]
    restarted = LogWriter(prefix, max_file_bytes=500, max_file_seconds=HOUR, max_total_bytes=1000)
    assert len(request_logs.log_files(prefix + "-")) == 2 and restarted.deleted == 2  # at once, before any write
    restarted.write(b"new")
    restarted.close()
    assert len(request_logs.log_files(prefix + "-")) == 2 and read_back(prefix + "-")[-1] == b"new"
    assert len(request_logs.log_files(other + "-")) == 4


def test_a_reader_never_sees_a_temporary_or_half_written_file(tmp_path):
    prefix = str(tmp_path / "m")
    writer = LogWriter(prefix, max_file_bytes=3000, max_file_seconds=HOUR, max_total_bytes=1 << 20)
    stop, seen, failures = threading.Event(), [], []

    def read_while_writing():
        while not stop.is_set():
            try:
                listed = request_logs.log_files(prefix)
                temporary = any(n.endswith(request_logs.TEMP_SUFFIX) for n in os.listdir(tmp_path))
                seen.append((len(listed), temporary, len(list(request_logs.read_records(listed)))))
            except Exception as e:  # noqa: BLE001 - any failure to read a listed file is the finding
                failures.append(repr(e))
    reader = threading.Thread(target=read_while_writing)
    reader.start()
    try:
        for record in records(2000, size=50):
            writer.write(record)
    finally:
        stop.set()
        reader.join()
        writer.close()
    assert not failures, failures[:3]
    assert any(temporary for _, temporary, _ in seen)  # the reader looked while a file was being written
    assert all(count % 45 == 0 for _, _, count in seen)  # whole files only: 45 records of 66 bytes in 3000
    assert len(read_back(prefix)) == 2000


def test_a_record_larger_than_the_whole_bound_is_refused_and_the_writer_goes_on(tmp_path):
    prefix = str(tmp_path / "m")
    writer = LogWriter(prefix, max_file_bytes=1000, max_file_seconds=HOUR, max_total_bytes=2000)
    writer.write(b"before")
    with pytest.raises(RecordTooLarge, match="larger than the request logs' disk bound"):
        writer.write(b"x" * 3000)
    writer.write(b"after")
    writer.close()
    assert read_back(prefix) == [b"before", b"after"]


def test_writers_of_one_prefix_in_turn_never_reuse_a_name(tmp_path):
    prefix = str(tmp_path / "m")
    for n in range(3):  # within one second: the same time and pid in the name
        writer = LogWriter(prefix, max_file_bytes=1000, max_file_seconds=HOUR, max_total_bytes=10_000)
        writer.write(b"record %d" % n)
        writer.close()
    assert read_back(prefix) == [b"record 0", b"record 1", b"record 2"]


def test_bad_bounds_are_refused(tmp_path):
    with pytest.raises(ValueError, match="max_total_bytes >= max_file_bytes"):
        LogWriter(str(tmp_path / "m"), max_file_bytes=1000, max_file_seconds=HOUR, max_total_bytes=999)
