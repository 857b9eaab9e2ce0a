"""tfxp data: CSV -> sharded TFRecords of tf.train.Example, on synthetic data with every dtype and kind."""
import base64
import csv
import hashlib
import os
import tempfile

import pytest

from components.core import feature as F
from components.core.user_code import load_user_code
from data import tfrecords
from pipeline import cli
from tests.support import synthetic
from tests.support.examples import read_examples

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
    examples = read_examples(str(tmp_path / "out" / "*" / "*"))
    rows = _csv_rows(csv_path)
    assert len(examples) == len(rows) == 300
    by_name = F.by_name(FEATURES)
    for row in rows:
        expected = {name: _expected_value(by_name[name], cell) for name, cell in row.items() if cell != ""}
        assert expected in examples


def test_missing_values_become_absent_features(tmp_path):
    csv_path = _csv(tmp_path, 200)
    _convert(csv_path, tmp_path / "out", shards=1)
    examples = read_examples(str(tmp_path / "out" / "*" / "*"))
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
        assert sorted(map(key, read_examples(str(tmp_path / "a" / split / "*")))) == \
            sorted(map(key, read_examples(str(tmp_path / "b" / split / "*"))))


def test_a_bytes_feature_stores_raw_binary_including_nul(tmp_path):
    image = bytes(range(256)) + b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
    spec = [F.Feature("id", F.INT64, F.UNUSED), F.Feature("image", F.BYTES, F.UNUSED, encoding=F.ENCODING_BASE64),
            F.Feature("caption", F.BYTES, F.UNUSED)]
    csv_path = tmp_path / "images.csv"
    csv_path.write_text("id,image,caption\n"
                        f"1,{base64.b64encode(image).decode()},café\n"
                        f"2,{base64.b64encode(b'').decode()},\n")
    tfrecords.convert_csv(str(csv_path), str(tmp_path / "out"), features=spec, shards=1, eval_percent=50)
    examples = {ex["id"][0]: ex for ex in read_examples(str(tmp_path / "out" / "*" / "*"))}
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
    assert {"income", "city", "defaulted"} <= set().union(*read_examples(str(tmp_path / "data" / "*" / "*")))


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


# -- the vectorized path: values Arrow cannot cast, errors in later blocks, and the row-by-row rules ---

def test_values_arrow_does_not_cast_follow_the_row_by_row_rules(tmp_path):
    header, (line1, line2) = _header_and_lines()
    line1[header.index("weekday")] = "3.0"  # a whole number written as a float is an int64
    line2[header.index("weekday")] = " 4"   # Python's int() takes surrounding spaces
    (tmp_path / "in.csv").write_text("\n".join(",".join(x) for x in [header, line1, line2]) + "\n")
    _convert(tmp_path / "in.csv", tmp_path / "out", shards=1)
    weekdays = sorted(ex["weekday"] for ex in read_examples(str(tmp_path / "out" / "*" / "*")))
    assert weekdays == [[3], [4]]


def test_an_error_after_many_blocks_and_a_multi_line_cell_names_its_line(tmp_path):
    header, lines = _header_and_lines(40)
    city = header.index("city")
    lines[3][city] = '"two\nlines"'  # one row over two lines: row numbers and line numbers differ from here
    lines[37][header.index("income")] = "lots"
    text = "\n".join(",".join(x) for x in [header] + lines) + "\n"
    (tmp_path / "bad.csv").write_text(text)
    source = tfrecords.csv_source(str(tmp_path / "bad.csv"), FEATURES, block_bytes=256)  # many small blocks
    with pytest.raises(tfrecords.DataError) as err:
        tfrecords.convert_source(source, str(tmp_path / "out"), features=FEATURES, shards=1, compression="none",
                           eval_percent=33, key_column=None, progress_every_seconds=60)
    assert f"{tmp_path / 'bad.csv'}, line 40, column 'income'" in str(err.value) and "'lots'" in str(err.value)
    assert os.listdir(tmp_path) == ["bad.csv"]


def test_a_row_with_too_few_cells_names_its_line(tmp_path):
    header, (line1, line2) = _header_and_lines()
    _assert_fails_cleanly(tmp_path, "\n".join(",".join(x) for x in [header, line1, line2[:-2]]) + "\n",
                          "line 3", f"expected {len(header)} cells")


def row_hash(key: str) -> int:
    """The documented rule (data/tfrecords.split_and_shard): md5 of the key, first 8 bytes, little-endian."""
    return int.from_bytes(hashlib.md5(key.encode("utf-8")).digest()[:8], "little")


def test_the_vectorized_path_splits_rows_as_the_row_hash_does(tmp_path):
    csv_path = _csv(tmp_path, 400)
    result = _convert(csv_path, tmp_path / "out", shards=2, eval_percent=40)
    rows = _csv_rows(csv_path)
    with open(csv_path, newline="") as f:
        raw = list(csv.reader(f))[1:]
    expected_eval = sum(row_hash(",".join(cells)) % 100 < 40 for cells in raw)
    assert result.rows == {"train": len(rows) - expected_eval, "eval": expected_eval}


# -- synthetic data at scale ------------------------------------------------------------------------

def test_synthetic_rows_are_resampled_jittered_and_reproducible(tmp_path):
    from data import synth

    csv_path = _csv(tmp_path, 200)
    table = synth.synthesize(csv_path, 5000, FEATURES, seed=7)
    again = synth.synthesize(csv_path, 5000, FEATURES, seed=7)
    other = synth.synthesize(csv_path, 5000, FEATURES, seed=8)
    assert table.num_rows == 5000 and table.equals(again) and not table.equals(other)
    source = {name: [row[name] for row in _csv_rows(csv_path)] for name in table.column_names}
    by_name = F.by_name(FEATURES)
    for name in table.column_names:
        values = table.column(name).to_pylist()
        feature = by_name.get(name)
        if feature is None:
            continue
        if synth.is_jittered(feature):
            given = [float(v) for v in source[name] if v != ""]
            made = [float(v) for v in values if v is not None]
            assert len(set(made)) > len(set(given)), f"{name} is jittered into new values"
            assert min(given) <= min(made) and max(made) <= max(given), f"{name} stays in the observed range"
            if feature.dtype == F.INT64:
                assert all(v.lstrip("-").isdigit() for v in values if v is not None)
        else:
            assert set(values) - {None} <= set(source[name]), f"{name} is copied as it is"
        empty_share = sum(v is None for v in values) / len(values)
        source_share = sum(v == "" for v in source[name]) / len(source[name])
        assert abs(empty_share - source_share) < 0.03, f"{name} keeps its share of empty cells"


def test_cli_scale_writes_tfrecords_or_a_csv(tmp_path, capsys):
    csv_path = _csv(tmp_path, 100)
    assert cli.main(["data", "--config", _config(tmp_path), "--csv", csv_path, "--scale", "3000",
                     "--shards", "2"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert len(read_examples(str(tmp_path / "data" / "*" / "*"))) == 3000
    out_csv = tmp_path / "big" / "synthetic.csv"
    assert cli.main(["data", "--config", _config(tmp_path), "--csv", csv_path, "--scale", "2500",
                     "--seed", "3", "--write-csv", str(out_csv)]) == 0
    assert len(_csv_rows(out_csv)) == 2500 and os.listdir(out_csv.parent) == ["synthetic.csv"]
    # the written CSV converts like any other
    assert _convert(out_csv, tmp_path / "from_csv", shards=1).total_rows == 2500


def test_cli_write_csv_needs_scale(tmp_path, capsys):
    assert cli.main(["data", "--config", _config(tmp_path), "--csv", _csv(tmp_path, 10),
                     "--write-csv", str(tmp_path / "x.csv")]) == 2
    assert "--scale" in capsys.readouterr().err


def test_text_that_is_not_utf8_is_named(tmp_path):
    header, (line1, _) = _header_and_lines()
    line1[header.index("city")] = "caf\xe9"
    csv_path = tmp_path / "bad.csv"
    csv_path.write_bytes(("\n".join(",".join(x) for x in [header, line1]) + "\n").encode("latin-1"))
    with pytest.raises(tfrecords.DataError, match="bad.csv: not UTF-8 text.*0xe9"):
        _convert(csv_path, tmp_path / "out", shards=1)
    assert os.listdir(tmp_path) == ["bad.csv"]
