"""tfxp data: CSV -> sharded TFRecords of tf.train.Example, on synthetic data with every dtype and kind."""
import base64
import csv
import os
import tempfile

import pytest

from components.core import feature as F
from components.core.user_code import load_user_code
from data import tfrecords
from pipeline import cli
from tests.support import synthetic

USER = load_user_code("synth_binary")
FEATURES = USER.features


def _csv(tmp_path, rows, name="in.csv"):
    return synthetic.write_csv(tmp_path / name, USER, rows)


def _csv_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _expected_value(feature, cell):
    if feature.dtype == F.INT64:
        return [int(float(cell))]
    if feature.dtype == F.FLOAT:
        return [pytest.approx(float(cell), rel=1e-6)]
    if feature.encoding == F.ENCODING_BASE64:
        return [base64.b64decode(cell)]
    return [cell.encode()]


def _convert(csv_path, out, **kwargs):
    return tfrecords.convert_csv(str(csv_path), str(out), features=FEATURES, **kwargs)


@pytest.mark.parametrize("compression, suffix", [("gzip", ".tfrecord.gz"), ("none", ".tfrecord")])
def test_round_trip_values_equal_the_csv(tmp_path, compression, suffix):
    csv_path = _csv(tmp_path, 300)
    result = _convert(csv_path, tmp_path / "out", shards=3, compression=compression)
    assert all(p.endswith(suffix) for files in result.files.values() for p in files)
    examples = tfrecords.read_examples(str(tmp_path / "out" / "*" / "*"))
    rows = _csv_rows(csv_path)
    assert len(examples) == len(rows) == 300
    by_name = F.by_name(FEATURES)
    for row in rows:
        expected = {name: _expected_value(by_name[name], cell) for name, cell in row.items() if cell != ""}
        assert expected in examples


def test_missing_values_become_absent_features(tmp_path):
    csv_path = _csv(tmp_path, 200)
    _convert(csv_path, tmp_path / "out", shards=1)
    examples = tfrecords.read_examples(str(tmp_path / "out" / "*" / "*"))
    empty_cells = sum(1 for row in _csv_rows(csv_path) for cell in row.values() if cell == "")
    absent = sum(len(FEATURES) - len(ex) for ex in examples)
    assert empty_cells > 0 and absent == empty_cells


def test_each_split_has_the_requested_number_of_shards(tmp_path):
    _convert(_csv(tmp_path, 200), tmp_path / "out", shards=5)
    for split in ("train", "eval"):
        assert len(os.listdir(tmp_path / "out" / split)) == 5


def test_split_is_deterministic_and_independent_of_row_order(tmp_path):
    csv_path = _csv(tmp_path, 400)
    with open(csv_path) as f:
        header, *lines = f.readlines()
    reversed_path = tmp_path / "reversed.csv"
    reversed_path.write_text(header + "".join(reversed(lines)))
    a = _convert(csv_path, tmp_path / "a", shards=2)
    b = _convert(reversed_path, tmp_path / "b", shards=2)
    assert a.rows == b.rows
    assert 0.2 < a.rows["eval"] / a.total_rows < 0.45  # about eval_percent=33
    for split in ("train", "eval"):
        key = lambda ex: repr(sorted(ex.items()))  # noqa: E731
        assert sorted(map(key, tfrecords.read_examples(str(tmp_path / "a" / split / "*")))) == \
            sorted(map(key, tfrecords.read_examples(str(tmp_path / "b" / split / "*"))))


def test_a_bytes_feature_stores_raw_binary_including_nul(tmp_path):
    image = bytes(range(256)) + b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
    spec = [F.Feature("id", F.INT64, F.UNUSED), F.Feature("image", F.BYTES, F.UNUSED, encoding=F.ENCODING_BASE64),
            F.Feature("caption", F.BYTES, F.UNUSED)]
    csv_path = tmp_path / "images.csv"
    csv_path.write_text("id,image,caption\n"
                        f"1,{base64.b64encode(image).decode()},café\n"
                        f"2,{base64.b64encode(b'').decode()},\n")
    tfrecords.convert_csv(str(csv_path), str(tmp_path / "out"), features=spec, shards=1, eval_percent=50)
    examples = {ex["id"][0]: ex for ex in tfrecords.read_examples(str(tmp_path / "out" / "*" / "*"))}
    assert examples[1]["image"] == [image] and b"\x00" in examples[1]["image"][0]
    assert examples[1]["caption"] == ["café".encode()]
    # An empty cell is a missing value, for bytes too: absent, not b"".
    assert "image" not in examples[2] and "caption" not in examples[2]


def _assert_fails_cleanly(tmp_path, csv_text, *message_parts):
    csv_path = tmp_path / "bad.csv"
    csv_path.write_text(csv_text)
    with pytest.raises(tfrecords.DataError) as err:
        _convert(csv_path, tmp_path / "out", shards=2)
    for part in (str(csv_path),) + message_parts:
        assert part in str(err.value)
    assert os.listdir(tmp_path) == ["bad.csv"], "no output (nor temp dir) may be left behind"
    return str(err.value)


def _header_and_lines(n=2):
    """The header and the first ``n`` lines of a synthetic CSV, as lists of cells."""
    with tempfile.TemporaryDirectory() as tmp:
        lines = open(synthetic.write_csv(os.path.join(tmp, "source.csv"), USER, 50)).read().splitlines()
    return lines[0].split(","), [line.split(",") for line in lines[1:n + 1]]


def test_missing_column_names_the_file_and_column(tmp_path):
    header, lines = _header_and_lines()
    drop = header.index("income")
    strip = lambda cells: ",".join(c for i, c in enumerate(cells) if i != drop)  # noqa: E731
    _assert_fails_cleanly(tmp_path, "\n".join(strip(x) for x in [header] + lines) + "\n", "line 1", "income")


def test_unparseable_number_names_file_line_and_column(tmp_path):
    header, (line1, line2) = _header_and_lines()
    line2[header.index("income")] = "twelve"
    message = _assert_fails_cleanly(tmp_path, "\n".join(",".join(x) for x in [header, line1, line2]) + "\n",
                                    "line 3", "'income'", "twelve")
    assert "float" in message


def test_non_integer_in_int_column_is_rejected(tmp_path):
    header, (line1, _) = _header_and_lines()
    line1[header.index("weekday")] = "2.5"
    _assert_fails_cleanly(tmp_path, "\n".join(",".join(x) for x in [header, line1]) + "\n",
                          "line 2", "'weekday'", "int64")


def test_malformed_base64_is_rejected(tmp_path):
    header, (line1, _) = _header_and_lines()
    line1[header.index("signature")] = "not base64!"
    _assert_fails_cleanly(tmp_path, "\n".join(",".join(x) for x in [header, line1]) + "\n",
                          "line 2", "'signature'", "base64")


def test_empty_file_is_an_error(tmp_path):
    _assert_fails_cleanly(tmp_path, "", "empty")


def test_header_only_file_is_an_error(tmp_path):
    header, _ = _header_and_lines()
    _assert_fails_cleanly(tmp_path, ",".join(header) + "\n", "no data rows")


def test_failed_conversion_keeps_an_existing_output(tmp_path):
    _convert(_csv(tmp_path, 30, name="good.csv"), tmp_path / "out", shards=1)
    before = sorted(os.listdir(tmp_path / "out" / "train"))
    (tmp_path / "bad.csv").write_text("")
    with pytest.raises(tfrecords.DataError):
        _convert(tmp_path / "bad.csv", tmp_path / "out", shards=3)
    assert sorted(os.listdir(tmp_path / "out" / "train")) == before


def _config(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(f"pipeline_name: loans\nuser_package: synth_binary\ndata_root: {tmp_path / 'data'}\n")
    return str(path)


def test_cli_types_columns_from_the_configured_package(tmp_path, capsys):
    csv_path = _csv(tmp_path, 40)
    code = cli.main(["data", "--config", _config(tmp_path), "--csv", csv_path, "--shards", "2",
                     "--compression", "none"])
    assert code == 0
    assert sorted(os.listdir(tmp_path / "data" / "train")) == ["data-00000-of-00002.tfrecord",
                                                              "data-00001-of-00002.tfrecord"]
    assert "compression none" in capsys.readouterr().out
    assert {"income", "city", "defaulted"} <= set().union(*tfrecords.read_examples(str(tmp_path / "data" / "*" / "*")))


def test_cli_exits_non_zero_with_the_error_on_stderr(tmp_path, capsys):
    (tmp_path / "empty.csv").write_text("")
    code = cli.main(["data", "--config", _config(tmp_path), "--csv", str(tmp_path / "empty.csv")])
    assert code == 2
    assert "empty.csv" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


def test_cli_without_a_csv_says_where_to_give_one(tmp_path, capsys):
    assert cli.main(["data", "--config", _config(tmp_path)]) == 2
    assert "no CSV to convert: pass --csv, or set source_csv" in capsys.readouterr().err


def test_run_without_tfrecords_or_a_csv_says_how_to_make_them(tmp_path, capsys):
    assert cli.main(["run", "--config", _config(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"data_root {tmp_path / 'data'} does not exist" in err and "tfxp data --csv" in err
    assert not (tmp_path / "data").exists()
