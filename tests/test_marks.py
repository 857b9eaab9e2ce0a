"""The marks that keep `make test-fast` fast (tests/support/marks.py): declared, applied, and enforced."""
import configparser
import os
import re
import types

import pytest

from tests.support import marks
from tests.support.marks import uses

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_mark_the_fast_loop_leaves_out_is_declared_in_setup_cfg():
    parser = configparser.ConfigParser()
    parser.read(os.path.join(ROOT, "setup.cfg"))
    declared = {line.split(":")[0].strip() for line in parser["tool:pytest"]["markers"].strip().splitlines()}
    assert set(marks.MARKERS) <= declared


def test_make_test_fast_leaves_out_every_mark_and_installs_no_system_package():
    with open(os.path.join(ROOT, "Makefile")) as f:
        makefile = f.read()
    assert re.search(r"^FAST_MARKS := (.*)$", makefile, re.M).group(1) == marks.FAST_SELECTION
    recipe = re.search(r"^test-fast:.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    assert recipe.strip() == '$(PY) -m pytest -m "$(FAST_MARKS)" $(PYTEST_ARGS)'
    test_recipe = re.search(r"^test:.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    command = re.search(r"^\t\$\(PY\) -m pytest (.*)$", test_recipe, re.M).group(1)
    assert command.endswith("$(PYTEST_ARGS)") and " -m " not in command  # make test runs every test: no -m


@pytest.fixture
@uses("beam")
def _runs_beam():
    return None


def test_a_test_gets_the_marks_of_the_fixtures_it_uses(request, _runs_beam):
    assert request.node.get_closest_marker("beam") is not None


def test_e2e_implies_beam_and_training():
    item = _item("e2e")
    assert marks.implied_markers(item) == {"e2e", "beam", "training"}


def test_uses_refuses_a_mark_the_fast_loop_does_not_know():
    with pytest.raises(ValueError, match="unknown marker"):
        uses("gpu")


def _item(*names, markexpr=""):
    """A stand-in for a pytest item carrying the marks ``names`` in a session run with ``-m markexpr``."""
    own = [types.SimpleNamespace(name=name) for name in names]
    return types.SimpleNamespace(
        nodeid="tests/x.py::test_x", fixturenames=(), iter_markers=lambda: iter(own),
        get_closest_marker=lambda name: next((m for m in own if m.name == name), None),
        config=types.SimpleNamespace(option=types.SimpleNamespace(markexpr=markexpr)))


def test_unmarked_use_fails_only_where_the_selection_leaves_the_mark_out():
    with pytest.raises(marks.UnmarkedUse, match=r"tests/x.py::test_x starts nginx.*not marked nginx.*mark.nginx"):
        marks.require("nginx", "starts nginx", _item(markexpr=marks.FAST_SELECTION))
    marks.require("nginx", "starts nginx", _item("nginx", markexpr=marks.FAST_SELECTION))  # marked
    marks.require("nginx", "starts nginx", _item(markexpr=""))                             # make test
    marks.require("nginx", "starts nginx", _item(markexpr="not e2e"))                      # nginx not left out
