"""TFRecord files of serialized records under a filename prefix, rotated and bounded on disk: the file side of
request logging (`tfxp serve`'s request loggers, serving/request_log.py; usable alone, e.g. by a log sink).
No TensorFlow: the TFRecord framing is written here (checked by reading the files back with TensorFlow).

    writer = LogWriter("/var/log/tfxp/chicago_taxi", max_file_bytes=64 << 20, max_file_seconds=3600,
                       max_total_bytes=1 << 30)
    writer.write(prediction_log.SerializeToString())    # from any thread
    writer.close()                                      # completes the file being written

* Names are tfxp/request_logs.py's: ``<prefix>-<UTC time opened>-<pid>-<n>.tfrecord``, written under
  ``<name>.tmp``, flushed to disk (fsync) and renamed when complete (tfxp/files.py's atomic_path), so a
  reader (request_logs.log_files) sees whole files only, and a killed process leaves only a ``.tmp`` behind.
* Rotation: the file is completed before a record would take it past ``max_file_bytes`` (a larger record gets
  a file of its own), and ``max_file_seconds`` after it was opened, by a timer when no record comes.
* Disk bound: the prefix's complete files (those found at start too) and the file being written take at most
  ``max_total_bytes``; the oldest complete files are deleted to make room. One writer per prefix: another
  process writing the same prefix is not counted until this one restarts.
"""
from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import os
import struct
import threading
import time
from typing import Deque, Dict, Iterator, List, Optional, Tuple

import google_crc32c

from tfxp import files, request_logs

log = logging.getLogger(__name__)

RECORD_OVERHEAD = 16  # a TFRecord's length (8 bytes) and two checksums (4 each) around the data


def _masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC-32C (tensorflow/core/lib/hash/crc32c.h Mask)."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord(data: bytes) -> bytes:
    """One TFRecord: length, its checksum, the data, its checksum."""
    length = struct.pack("<Q", len(data))
    return b"".join((length, struct.pack("<I", _masked_crc(length)), data, struct.pack("<I", _masked_crc(data))))


class RecordTooLarge(ValueError):
    """A record larger than the whole disk bound: it cannot be written."""


_sequences: Dict[str, Iterator[int]] = {}  # per prefix, for this process: two writers in turn never reuse a name
_sequences_lock = threading.Lock()


def _next_sequence(prefix: str) -> int:
    with _sequences_lock:
        return next(_sequences.setdefault(prefix, itertools.count(1)))


def location_problem(filename_prefix: str) -> Optional[str]:
    """Why files cannot be written under ``filename_prefix`` (its folder, or the nearest existing one above it
    that the writer would create it in, is not a writable folder), or None."""
    folder = os.path.dirname(os.path.abspath(filename_prefix))
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        return f"{folder} is not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"{folder} is not writable"
    return None


class LogWriter:
    """See the module docstring. Thread-safe; ``close()`` completes the current file."""

    def __init__(self, filename_prefix: str, max_file_bytes: int, max_file_seconds: float, max_total_bytes: int):
        if not (max_file_bytes > 0 and max_file_seconds > 0 and max_total_bytes >= max_file_bytes):
            raise ValueError(f"LogWriter({filename_prefix!r}): expected max_file_bytes > 0, max_file_seconds > 0 and "
                             f"max_total_bytes >= max_file_bytes, got {max_file_bytes}, {max_file_seconds}, "
                             f"{max_total_bytes}")
        self.prefix = os.path.abspath(filename_prefix)
        self.max_file_bytes, self.max_file_seconds, self.max_total_bytes = (max_file_bytes, max_file_seconds,
                                                                            max_total_bytes)
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # the timer waits on it for the current file's deadline
        self._file = None
        self._stack = None  # the current file's atomic_path: renames it when closed without an error
        self._path, self._size, self._records, self._opened = "", 0, 0, 0.0
        self._complete: Deque[Tuple[str, int]] = collections.deque(self._existing_files())
        self._total = sum(size for _, size in self._complete)  # of the complete files
        self._closed = False
        self.deleted = 0  # complete files deleted for the bound
        with self._lock:
            self._make_room(0)
        self._timer = threading.Thread(target=self._complete_when_old, name=f"log-timer {os.path.basename(self.prefix)}",
                                       daemon=True)
        self._timer.start()

    def _existing_files(self) -> List[Tuple[str, int]]:
        directory, name = os.path.split(self.prefix)
        try:
            names = sorted(n for n in os.listdir(directory) if request_logs.is_file_of(name, n))
        except FileNotFoundError:
            return []
        found = []
        for n in names:  # by name: oldest first
            with contextlib.suppress(FileNotFoundError):
                found.append((os.path.join(directory, n), os.path.getsize(os.path.join(directory, n))))
        return found

    # -- writing ----------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Appends one record. Raises RecordTooLarge, or OSError (the file being written is then lost: logged)."""
        record = tfrecord(data)
        size = len(record)
        with self._lock:
            if self._closed:
                raise ValueError(f"the log writer of {self.prefix} is closed")
            if size > self.max_total_bytes:
                raise RecordTooLarge(f"a record of {size} bytes is larger than the request logs' disk bound "
                                     f"({self.max_total_bytes} bytes)")
            if self._file is not None and (self._size + size > self.max_file_bytes or self._age() >= self.max_file_seconds):
                self._complete_file()
            self._make_room(size)
            if self._file is None:
                self._open()
            try:
                self._file.write(record)
            except OSError:
                self._abandon()
                raise
            self._size += size
            self._records += 1

    def close(self) -> None:
        """Completes the file being written and stops the timer; later writes raise."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._wake.notify()
            if self._file is not None:
                self._complete_file()
        self._timer.join()

    @property
    def complete_files(self) -> List[str]:
        with self._lock:
            return [path for path, _ in self._complete]

    # -- files (the lock held) --------------------------------------------------------------------
    def _age(self) -> float:
        return time.monotonic() - self._opened

    def _open(self) -> None:
        opened = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        path = request_logs.file_name(self.prefix, opened, os.getpid(), _next_sequence(self.prefix))
        stack = contextlib.ExitStack()
        temporary = stack.enter_context(files.atomic_path(path, temporary=path + request_logs.TEMP_SUFFIX))
        try:
            self._file = open(temporary, "xb", buffering=1 << 16)
        except BaseException:
            stack.close()
            raise
        self._stack, self._path, self._size, self._records, self._opened = stack, path, 0, 0, time.monotonic()
        self._wake.notify()

    def _complete_file(self) -> None:
        """Flushed, fsynced, renamed to its final name: then it counts as complete."""
        file, stack, path, size = self._file, self._stack, self._path, self._size
        self._file, self._stack, self._size = None, None, 0
        with stack:  # renames the temporary file; on an error removes it
            try:
                file.flush()
                os.fsync(file.fileno())
            finally:
                file.close()
        self._complete.append((path, size))
        self._total += size

    def _abandon(self) -> None:
        """After a write error: the file being written is removed (its end is unknown)."""
        file, stack, path, records = self._file, self._stack, self._path, self._records
        self._file, self._stack, self._size = None, None, 0
        with contextlib.suppress(OSError):
            file.close()
        with contextlib.suppress(OSError):
            stack.__exit__(OSError, OSError("write failed"), None)  # atomic_path removes the temporary file
        log.error("request log %s: a write failed; the file's %d records are lost", path, records)

    def _make_room(self, size: int) -> None:
        """Deletes the oldest complete files until ``size`` more bytes keep the prefix within its bound."""
        while self._complete and self._total + self._size + size > self.max_total_bytes:
            path, old = self._complete.popleft()
            self._total -= old
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
            except OSError as e:
                log.error("request log: cannot delete %s to stay within %d bytes: %s", path, self.max_total_bytes, e)
            self.deleted += 1

    def _complete_when_old(self) -> None:
        """The timer: completes the current file max_file_seconds after it was opened, records or not."""
        with self._lock:
            while not self._closed:
                if self._file is None:
                    self._wake.wait()
                    continue
                left = self.max_file_seconds - self._age()
                if left > 0:
                    self._wake.wait(left)
                    continue
                try:
                    self._complete_file()
                except OSError as e:
                    log.error("request log %s: cannot complete the file: %s", self._path, e)
