"""Shared fixtures.

Platform tests (tests/platform/) run on synthetic data from the three test datasets in
tests/datasets/ (binary, multi-class, regression): user packages exactly like a data scientist
would write, put on the path here. The shipped sample (components/, Chicago taxi) has its own
tests in tests/sample/.

Marks (tests/support/marks.py, docs/testing.md): what runs a Beam pipeline, trains a model, needs nginx or
Chromium, or runs the whole pipeline is marked, explicitly or through the fixtures it uses, and
`make test-fast` leaves it out; `make test` runs everything.
"""
import csv
import os
import sys
from typing import Optional

import pytest

import components  # noqa: F401  (one Keras, before TensorFlow)
from data import SAMPLE_CSV
from tests.support import marks
from tests.support.marks import uses

DATASETS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "datasets")
sys.path.insert(0, DATASETS_DIR)
# Processes the tests start (tfxp, Beam and training workers, KFP task containers) import them too.
os.environ["PYTHONPATH"] = os.pathsep.join([DATASETS_DIR] + [p for p in os.environ.get("PYTHONPATH", "").split(
    os.pathsep) if p])

TASK_PACKAGES = ["synth_binary", "synth_multiclass", "synth_regression"]


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marks
def pytest_collection_modifyitems(items):
    """Each test gets the marks of the fixtures it uses (``@uses``), and e2e implies beam and training.

    And a group for `make test`'s two worker processes (pytest-xdist, --dist loadgroup): a file's tests stay
    together (its module fixtures run once), and every test of the sample's run in one worker (it runs once)."""
    for item in items:
        present = {m.name for m in item.iter_markers()}
        for marker in sorted(marks.implied_markers(item) - present):
            item.add_marker(marker)
        group = "sample_run" if "sample_run" in getattr(item, "fixturenames", ()) else item.nodeid.split("::")[0]
        item.add_marker(pytest.mark.xdist_group(group))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """marks.require() checks the running test's marks (its fixtures' setup and teardown included)."""
    marks.set_running(item)
    try:
        yield
    finally:
        marks.set_running(None)


_UNMARKED_SLOW = []


def pytest_runtest_logreport(report):
    if report.when == "call" and report.duration > marks.UNMARKED_LIMIT_SECONDS \
            and not any(marker in report.keywords for marker in marks.MARKERS):
        _UNMARKED_SLOW.append((report.duration, report.nodeid))


def pytest_terminal_summary(terminalreporter, config):
    """In a selection that leaves slow tests out (make test-fast), names the unmarked tests that were slow."""
    if _UNMARKED_SLOW and marks.deselects(config, {"slow"}):
        terminalreporter.write_sep("=", f"unmarked tests slower than {marks.UNMARKED_LIMIT_SECONDS:.0f} s")
        for seconds, nodeid in sorted(_UNMARKED_SLOW, reverse=True):
            terminalreporter.write_line(f"{seconds:6.1f} s  {nodeid}")
        terminalreporter.write_line("mark them (slow, or what makes them slow) to keep the fast loop fast: "
                                    "docs/testing.md")


@pytest.fixture(scope="session")
def workspace(tmp_path_factory):
    from tests.support.workspace import Workspace
    return Workspace(str(tmp_path_factory.mktemp("workspace")))


@pytest.fixture(params=TASK_PACKAGES)
def package(request):
    """Each of the three test datasets: a test using it runs once per task."""
    return request.param


def write_csv_slice(path, rows: int, start: int = 0):
    """The first ``rows`` data rows of the sample CSV (after ``start``)."""
    with open(SAMPLE_CSV, newline="") as src, open(path, "w", newline="") as dst:
        reader, writer = csv.reader(src), csv.writer(dst)
        writer.writerow(next(reader))
        for i, row in enumerate(reader):
            if i >= start + rows:
                break
            if i >= start:
                writer.writerow(row)
    return str(path)


def write_without_column(src, dst, column: str, rows: Optional[int] = None):
    """A copy of the CSV ``src`` without ``column`` (e.g. rows to score: no label), its first ``rows`` rows or all."""
    with open(src, newline="") as f_in, open(dst, "w", newline="") as f_out:
        reader = csv.DictReader(f_in)
        assert column in reader.fieldnames, (column, reader.fieldnames)
        writer = csv.DictWriter(f_out, [name for name in reader.fieldnames if name != column], extrasaction="ignore")
        writer.writeheader()
        for i, row in enumerate(reader):
            if rows is not None and i >= rows:
                break
            writer.writerow(row)
    return str(dst)


@pytest.fixture(scope="session")
@uses("e2e")
def sample_run(tmp_path_factory):
    """The whole pipeline on a 2,000-row slice of the sample, once per session (e2e tests only), with the batch
    scoring branch on for the first 300 of those rows without their label's column (unlabelled.csv):
    (tmp dir, config path, config, the run's CompletedProcess)."""
    from pipeline.config import load_config
    from tests.support.sample_run import tfxp_run, write_config

    tmp = tmp_path_factory.mktemp("e2e")
    rows = write_csv_slice(tmp / "slice.csv", 2000)
    unlabelled = write_without_column(rows, tmp / "unlabelled.csv", "tips", rows=300)
    config_path = write_config(tmp, rows, inference={"data": unlabelled})
    result = tfxp_run(config_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return tmp, config_path, load_config(config_path), result
