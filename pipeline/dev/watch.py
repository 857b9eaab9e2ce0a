"""Waits for the data scientist to save: the watched files' contents change, then stay quiet a moment.

Polling the files' stat (size, mtime) a few times a second costs nothing for the few dozen files a
user package reaches, and sees every way an editor saves (in place, or a new file renamed over the
old one); a change counts only when the content differs (a save that writes the same bytes, or a
`touch`, starts nothing). Debounced: an editor or a `git checkout` writing several files is one change.
"""
from __future__ import annotations

import hashlib
import os
import threading
import time
from typing import Callable, Dict, Iterable, List, Optional, Tuple

POLL_SECONDS = 0.25
QUIET_SECONDS = 0.5  # a change is complete when nothing else changed for this long


def _stat(path: str) -> Optional[Tuple[int, int, int]]:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino


def _digest(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except FileNotFoundError:
        return None


class Watcher:
    """``files``: a function returning the paths to watch now (the set can change after an iteration)."""

    def __init__(self, files: Callable[[], Iterable[str]], poll_seconds: float = POLL_SECONDS,
                 quiet_seconds: float = QUIET_SECONDS):
        self.files = files
        self.poll_seconds, self.quiet_seconds = poll_seconds, quiet_seconds
        self._stats: Dict[str, Optional[Tuple[int, int, int]]] = {}
        self._digests: Dict[str, Optional[str]] = {}

    def mark(self) -> None:
        """The files as they are now are the baseline: the next change is measured from here."""
        paths = sorted(set(self.files()))
        self._stats = {p: _stat(p) for p in paths}
        self._digests = {p: _digest(p) for p in paths}

    def _stat_changes(self) -> List[str]:
        return [p for p in sorted(set(self.files()) | set(self._stats)) if _stat(p) != self._stats.get(p)]

    def changed(self) -> List[str]:
        """Files whose content differs from the baseline (and the baseline moves to now for those)."""
        found = []
        for path in self._stat_changes():
            self._stats[path] = _stat(path)
            digest = _digest(path)
            if digest != self._digests.get(path):
                self._digests[path] = digest
                found.append(path)
        return found

    def wait(self, stop: Optional[threading.Event] = None) -> List[str]:
        """Blocks until some file's content changed and then nothing changed for ``quiet_seconds``; returns every
        file that changed. Returns [] when ``stop`` is set."""
        stop = stop or threading.Event()
        changed: List[str] = []
        last_change = None
        while not stop.is_set():
            found = self.changed()
            now = time.monotonic()
            if found:
                changed += [p for p in found if p not in changed]
                last_change = now
            elif changed and now - last_change >= self.quiet_seconds:
                return changed
            stop.wait(self.poll_seconds)
        return []
