"""Request-log files to a remote prefix (gs://): the request-log writer (serving/log_writer.py) writes local
files only, so a sink logging to a bucket writes into a local spool under the remote prefix's own file
name part, and this moves each complete file up, oldest first, keeping its name.

A file is copied to ``<name>.tmp`` (tfxp/request_logs.py's temporary name, which readers skip), renamed to
its name, then deleted locally: a reader of the remote prefix sees whole files only. A copy that fails is
retried at the next round; meanwhile the writer's disk bound keeps the spool from growing without end.
"""
from __future__ import annotations

import logging
import os
import posixpath
import threading
from typing import Callable, Optional

from tfxp import request_logs

log = logging.getLogger(__name__)

SHIP_SECONDS = 10.0


def spool_prefix(remote_prefix: str, spool_dir: str) -> str:
    """The local prefix whose files have the remote prefix's names."""
    return os.path.join(spool_dir, posixpath.basename(remote_prefix))


class LogShipper:
    """``ship()`` moves the spool's complete files now; a thread calls it every ``interval`` seconds until
    ``close()``, which ships once more. ``on_shipped``/``on_failed`` count (the sink's metrics)."""

    def __init__(self, local_prefix: str, remote_prefix: str, interval: float = SHIP_SECONDS,
                 on_shipped: Optional[Callable[[], None]] = None, on_failed: Optional[Callable[[], None]] = None):
        self.local_prefix, self.remote_dir = local_prefix, posixpath.dirname(remote_prefix)
        self.interval = interval
        self.on_shipped, self.on_failed = on_shipped or (lambda: None), on_failed or (lambda: None)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="log-shipper", daemon=True)
        self._thread.start()

    def ship(self) -> int:
        """Moves every complete spool file to the remote prefix; returns how many went."""
        import tensorflow as tf

        shipped = 0
        with self._lock:
            if not os.path.isdir(os.path.dirname(self.local_prefix)):
                return 0
            for path in request_logs.log_files(self.local_prefix):
                target = posixpath.join(self.remote_dir, os.path.basename(path))
                temporary = target + request_logs.TEMP_SUFFIX
                try:
                    tf.io.gfile.makedirs(self.remote_dir)
                    tf.io.gfile.copy(path, temporary, overwrite=True)
                    tf.io.gfile.rename(temporary, target, overwrite=True)
                except (tf.errors.OpError, OSError) as e:
                    if not os.path.exists(path):   # the writer's disk bound deleted it meanwhile
                        continue
                    log.error("request log %s: cannot upload it to %s (retried later): %s", path, target, e)
                    self.on_failed()
                    break
                try:
                    os.remove(path)
                except FileNotFoundError:
                    pass
                shipped += 1
                self.on_shipped()
        return shipped

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.ship()

    def close(self) -> None:
        """Stops the thread, then ships what is complete (call it after the writer's close)."""
        self._stop.set()
        self._thread.join()
        self.ship()
