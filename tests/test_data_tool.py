"""tfxp data: CSV -> sharded TFRecords of tf.train.Example."""
import base64
import csv
import os

import pytest

from components import features as F
from data import SAMPLE_CSV, tfrecords
from pipeline import cli

from tests.conftest import write_csv_slice


def _csv_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _expected_value(feature, cell):
    if feature.dtype == F.INT64:
        return [int(float(cell))]
    if feature.dtype == F.FLOAT:
        return [pytest.approx(float(cell), rel=1e-6)]
    return [cell.encode()]


@pytest.mark.parametrize("compression, suffix", [("gzip", ".tfrecord.gz"), ("none", ".tfrecord")])
def test_round_trip_values_equal_the_csv(tmp_path, compression, suffix):
    csv_path = write_csv_slice(tmp_path / "in.csv", 300)
    result = tfrecords.convert_csv(csv_path, str(tmp_path / "out"), shards=3, compression=compression)
    assert all(p.endswith(suffix) for files in result.files.values() for p in files)

    examples = tfrecords.read_examples(str(tmp_path / "out" / "*" / "*"))
    rows = _csv_rows(csv_path)
    assert len(examples) == len(rows) == 300
    features = F.by_name()
    for row in rows:
        expected = {name: _expected_value(features[name], cell) for name, cell in row.items() if cell != ""}
        assert expected in examples


def test_missing_values_become_absent_features(tmp_path):
    csv_path = write_csv_slice(tmp_path / "in.csv", 50)
    tfrecords.convert_csv(csv_path, str(tmp_path / "out"), shards=1)
    examples = tfrecords.read_examples(str(tmp_path / "out" / "*" / "*"))
    rows = _csv_rows(csv_path)
    empty_cells = sum(1 for row in rows for cell in row.values() if cell == "")
    absent = sum(len(F.FEATURES) - len(ex) for ex in examples)
    assert empty_cells > 0 and absent == empty_cells


def test_each_split_has_the_requested_number_of_shards(tmp_path):
    csv_path = write_csv_slice(tmp_path / "in.csv", 200)
    tfrecords.convert_csv(csv_path, str(tmp_path / "out"), shards=5)
    for split in ("train", "eval"):
        assert len(os.listdir(tmp_path / "out" / split)) == 5


def test_split_is_deterministic_and_independent_of_row_order(tmp_path):
    csv_path = write_csv_slice(tmp_path / "in.csv", 400)
    with open(csv_path) as f:
        header, *lines = f.readlines()
    reversed_path = tmp_path / "reversed.csv"
    reversed_path.write_text(header + "".join(reversed(lines)))
    a = tfrecords.convert_csv(csv_path, str(tmp_path / "a"), shards=2)
    b = tfrecords.convert_csv(str(reversed_path), str(tmp_path / "b"), shards=2)
    assert a.rows == b.rows
    assert 0.2 < a.rows["eval"] / a.total_rows < 0.45  # about eval_percent=33
    for split in ("train", "eval"):
        rows_a = tfrecords.read_examples(str(tmp_path / "a" / split / "*"))
        rows_b = tfrecords.read_examples(str(tmp_path / "b" / split / "*"))
        key = lambda ex: repr(sorted(ex.items()))  # noqa: E731
        assert sorted(map(key, rows_a)) == sorted(map(key, rows_b))


def test_a_bytes_feature_stores_raw_binary_including_nul(tmp_path):
    image = bytes(range(256)) + b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
    spec = [F.Feature("id", F.INT64, F.UNUSED), F.Feature("image", F.BYTES, F.UNUSED, encoding=F.ENCODING_BASE64),
            F.Feature("caption", F.BYTES, F.UNUSED)]
    csv_path = tmp_path / "images.csv"
    csv_path.write_text("id,image,caption\n"
                        f"1,{base64.b64encode(image).decode()},café\n"
                        f"2,{base64.b64encode(b'').decode()},\n")
    tfrecords.convert_csv(str(csv_path), str(tmp_path / "out"), shards=1, features=spec, eval_percent=50)
    examples = {ex["id"][0]: ex for ex in tfrecords.read_examples(str(tmp_path / "out" / "*" / "*"))}
    assert examples[1]["image"] == [image]
    assert b"\x00" in examples[1]["image"][0]
    assert examples[1]["caption"] == ["café".encode()]
    # An empty cell is a missing value, for bytes too: absent, not b"".
    assert "image" not in examples[2] and "caption" not in examples[2]


def _assert_fails_cleanly(tmp_path, csv_text, *message_parts):
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text(csv_text)
    out = tmp_path / "out"
    with pytest.raises(tfrecords.DataError) as err:
        tfrecords.convert_csv(str(csv_path), str(out), shards=2)
    for part in (str(csv_path),) + message_parts:
        assert part in str(err.value)
    assert os.listdir(tmp_path) == ["bad.csv"], "no output (nor temp dir) may be left behind"
    return str(err.value)


def _sample_header_and_line(n=3):
    with open(SAMPLE_CSV) as f:
        return [next(f) for _ in range(n)]


def test_missing_column_names_the_file_and_column(tmp_path):
    header, *lines = _sample_header_and_line()
    cols = header.strip().split(",")
    drop = cols.index("trip_miles")
    strip = lambda line: ",".join(c for i, c in enumerate(line.strip().split(",")) if i != drop)  # noqa: E731
    _assert_fails_cleanly(tmp_path, "\n".join(strip(x) for x in [header] + lines) + "\n",
                          "line 1", "trip_miles")


def test_unparseable_number_names_file_line_and_column(tmp_path):
    header, line1, line2 = _sample_header_and_line()
    cols = header.strip().split(",")
    cells = line2.strip().split(",")
    cells[cols.index("fare")] = "twelve"
    message = _assert_fails_cleanly(tmp_path, header + line1 + ",".join(cells) + "\n",
                                    "line 3", "'fare'", "twelve")
    assert "float" in message


def test_non_integer_in_int_column_is_rejected(tmp_path):
    header, line1, _ = _sample_header_and_line()
    cols = header.strip().split(",")
    cells = line1.strip().split(",")
    cells[cols.index("trip_start_hour")] = "7.5"
    _assert_fails_cleanly(tmp_path, header + ",".join(cells) + "\n", "line 2", "'trip_start_hour'", "int64")


def test_empty_file_is_an_error(tmp_path):
    _assert_fails_cleanly(tmp_path, "", "empty")


def test_header_only_file_is_an_error(tmp_path):
    header = _sample_header_and_line(1)[0]
    _assert_fails_cleanly(tmp_path, header, "no data rows")


def test_failed_conversion_keeps_an_existing_output(tmp_path):
    good = write_csv_slice(tmp_path / "good.csv", 30)
    tfrecords.convert_csv(good, str(tmp_path / "out"), shards=1)
    before = sorted(os.listdir(tmp_path / "out" / "train"))
    (tmp_path / "bad.csv").write_text("")
    with pytest.raises(tfrecords.DataError):
        tfrecords.convert_csv(str(tmp_path / "bad.csv"), str(tmp_path / "out"), shards=3)
    assert sorted(os.listdir(tmp_path / "out" / "train")) == before


def test_cli_exits_non_zero_with_the_error_on_stderr(tmp_path, capsys):
    (tmp_path / "empty.csv").write_text("")
    code = cli.main(["data", "--csv", str(tmp_path / "empty.csv"), "--output", str(tmp_path / "out")])
    assert code == 2
    assert "empty.csv" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_writes_shards_with_the_chosen_compression(tmp_path, capsys):
    csv_path = write_csv_slice(tmp_path / "in.csv", 40)
    code = cli.main(["data", "--csv", csv_path, "--output", str(tmp_path / "out"), "--shards", "2",
                     "--compression", "none"])
    assert code == 0
    assert sorted(os.listdir(tmp_path / "out" / "train")) == ["data-00000-of-00002.tfrecord",
                                                              "data-00001-of-00002.tfrecord"]
    assert "compression none" in capsys.readouterr().out
