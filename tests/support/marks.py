"""The marks that keep the inner test loop fast (docs/testing.md), and how tests get them.

``make test-fast`` deselects every test marked ``e2e``, ``beam``, ``training``, ``nginx``, ``browser`` or
``slow`` (MARKERS; their meaning: setup.cfg). A test gets those marks three ways:

* explicitly: ``pytestmark = pytest.mark.beam`` in its module, or ``@pytest.mark.training`` on it;
* from a fixture it uses, even indirectly: a fixture that runs a Beam pipeline, trains a model or starts
  nginx says so with ``@uses("beam")`` (under ``@pytest.fixture``), and tests/conftest.py marks every test
  that uses it;
* ``e2e`` implies ``beam`` and ``training``: the whole pipeline runs both.

Support code that needs one of them calls ``require(marker, what)``: when the running test lacks the mark
and the ``-m`` expression deselects tests carrying it (the fast loop), the test fails with a message
naming the mark to add, instead of silently starting a Beam pipeline, a training job, nginx or Chromium
there. Outside pytest (benchmarks, self-checks), and in the full suite, ``require`` does nothing.
"""
from __future__ import annotations

from typing import Callable, Optional, Set

MARKERS = ("e2e", "beam", "training", "nginx", "browser", "slow")
FAST_SELECTION = "not (" + " or ".join(MARKERS) + ")"  # the Makefile's test-fast says the same
# An unmarked test whose call takes longer is named at the end of a fast run. Above `slow`'s "about 5 s":
# the first Keras metric or TensorFlow subprocess of a session costs 5-6 s wherever it falls.
UNMARKED_LIMIT_SECONDS = 10.0
IMPLIED = {"e2e": ("beam", "training")}
_ATTRIBUTE = "_tfxp_test_marks"

_running = None  # the pytest item being set up, run or torn down (tests/conftest.py sets it)


class UnmarkedUse(AssertionError):
    """A test uses what one of MARKERS stands for without carrying that mark."""


def uses(*markers: str) -> Callable:
    """Declares what a fixture function runs: every test that uses it gets ``markers``.

        @pytest.fixture(scope="module")
        @uses("beam", "training")
        def tfma_results(workspace): ...
    """
    unknown = set(markers) - set(MARKERS)
    if unknown:
        raise ValueError(f"unknown marker(s) {sorted(unknown)}: expected some of {MARKERS}")

    def declare(function):
        setattr(function, _ATTRIBUTE, tuple(markers))
        return function
    return declare


def _declared(function) -> tuple:
    while function is not None:
        if hasattr(function, _ATTRIBUTE):
            return getattr(function, _ATTRIBUTE)
        function = getattr(function, "__wrapped__", None)
    return ()


def implied_markers(item) -> Set[str]:
    """The marks ``item`` gets from the fixtures it uses (directly or through other fixtures) and from e2e."""
    found: Set[str] = set()
    fixture_info = getattr(item, "_fixtureinfo", None)
    for name in getattr(item, "fixturenames", ()):
        for definition in (fixture_info.name2fixturedefs.get(name, ()) if fixture_info else ()):
            found.update(_declared(definition.func))
    found.update(m.name for m in item.iter_markers() if m.name in MARKERS)
    for marker in list(found):
        found.update(IMPLIED.get(marker, ()))
    return found


def set_running(item) -> None:
    global _running
    _running = item


def deselects(config, names) -> bool:
    """Whether the session's ``-m`` expression deselects a test carrying the marks ``names``."""
    expression = getattr(config.option, "markexpr", "")
    if not expression:
        return False
    try:
        from _pytest.mark.expression import Expression

        return not Expression.compile(expression).evaluate(lambda name, **_: name in names)
    except Exception:  # noqa: BLE001  (pytest's private API moved: no check rather than a false alarm)
        return False


def deselected_with(item, marker: str) -> bool:
    """Whether the session's ``-m`` expression would have deselected ``item`` had it carried ``marker``."""
    return deselects(item.config, {m.name for m in item.iter_markers()} | {marker})


def require(marker: str, what: str, item: Optional[object] = None) -> None:
    """Fails the running test when it does ``what`` (which ``marker`` stands for) unmarked in a selection
    that leaves ``marker`` out."""
    item = item or _running
    if item is None or item.get_closest_marker(marker) is not None or not deselected_with(item, marker):
        return
    raise UnmarkedUse(f"{item.nodeid} {what}, which the -m selection leaves out, but is not marked {marker}: "
                      f"add @pytest.mark.{marker} to it (or @uses({marker!r}) to the fixture that does it); "
                      f"see docs/testing.md")
