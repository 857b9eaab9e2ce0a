"""A run's terminal shows progress; its full log goes to a file.

TFX, Beam and TensorFlow write thousands of lines per run (Python logging, absl, C++ logs and child
processes alike). During the run, file descriptors 1 and 2 point at the log file, so everything,
from any thread or child process, lands there; the terminal gets one line per component from
TFX's own "Component X is running / is finished" messages:

    [ 7/13] trainer           executed   17.2 s
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import threading
import time
from typing import Dict, Iterator, List, TextIO

_RUNNING = re.compile(r"^Component (\S+) is running\.$")
_FINISHED = re.compile(r"^Component (\S+) is finished\.$")
_CACHED = re.compile(r"^A cached execution \d+ is used\.$")
HEARTBEAT_SECONDS = 30.0


class Progress(logging.Handler):
    """Turns TFX's component messages into one terminal line per component, n of N, with its time.

    Components may run at the same time (pipeline/parallel_runner.py), each in its own thread:
    TFX's "A cached execution is used" names no component, so it is matched by thread.
    """

    def __init__(self, terminal: TextIO, nodes: List[str] = (), *, echo_to_log: bool = True,
                 component_lines: bool = True):
        super().__init__(logging.INFO)
        self.terminal, self.echo_to_log = terminal, echo_to_log
        self.component_lines = component_lines  # False: only the live status line and heartbeats
        self.track(nodes)
        self.live = hasattr(terminal, "isatty") and terminal.isatty()
        self.running: Dict[str, List] = {}  # node -> [started, cached, thread]
        self.finished = 0
        self.run_started = time.monotonic()
        self.state_lock = threading.Lock()  # not `lock`: that is logging.Handler's own
        self.stop = threading.Event()
        self.heartbeat = threading.Thread(target=self._beat, daemon=True)
        self.heartbeat.start()

    def track(self, nodes: List[str]) -> None:
        """The pipeline's components, in order: their messages from now on become progress lines."""
        self.nodes = list(nodes)
        self.width = max((len(n) for n in self.nodes), default=10)

    def say(self, text: str) -> None:
        """A line for the user, on the terminal (and in the log)."""
        if self.echo_to_log:
            logging.getLogger(__name__).info("%s", text)
        with self.state_lock:
            self._write(text)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is not ours to report
            return
        with self.state_lock:
            if _RUNNING.match(message):
                self.running[_RUNNING.match(message).group(1)] = [time.monotonic(), False, record.thread]
                self._show_running()
            elif _CACHED.match(message):
                for state in self.running.values():
                    if state[2] == record.thread:
                        state[1] = True
            elif _FINISHED.match(message):
                node = _FINISHED.match(message).group(1)
                started, cached, _ = self.running.pop(node, [time.monotonic(), False, None])
                self.finished += 1
                if self.component_lines:
                    self._write(f"{self._prefix(node)} {'cached' if cached else 'executed':<9} "
                                f"{time.monotonic() - started:6.1f} s")
                self._show_running()

    def _prefix(self, node: str) -> str:
        n = self.nodes.index(node) + 1 if node in self.nodes else 0
        return f"  [{n:>2}/{len(self.nodes)}] {node:<{self.width}}"

    def _show_running(self) -> None:
        if self.live and self.running:
            now = time.monotonic()
            self._write(f"  {self.finished}/{len(self.nodes)} done; running: " + ", ".join(
                f"{node} {now - state[0]:.0f} s" for node, state in self.running.items()), end="\r")

    def _beat(self) -> None:
        period = 1.0 if self.live else HEARTBEAT_SECONDS
        while not self.stop.wait(period):
            with self.state_lock:
                if self.live:
                    self._show_running()
                    continue
                now = time.monotonic()
                for node, state in self.running.items():
                    if now - state[0] >= HEARTBEAT_SECONDS:
                        self._write(f"{self._prefix(node)} still running ({now - state[0]:.0f} s; "
                                    f"{now - self.run_started:.0f} s into the run)")

    def _write(self, text: str, end: str = "\n") -> None:
        clear = "\r\033[K" if self.live else ""
        self.terminal.write(clear + text + end)
        self.terminal.flush()

    def close(self) -> None:
        self.stop.set()
        super().close()


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Keeps a command's progress to its own lines (the report, the drift check): Beam logs its type hints
    at import, and TFMA's readers log TensorFlow's deprecation warnings about their own calls."""
    loggers = {logging.getLogger(name): level for name, level in
               [("apache_beam", logging.WARNING), ("tensorflow", logging.ERROR), ("absl", logging.WARNING)]}
    saved = {logger: logger.level for logger in loggers}
    try:
        for logger, level in loggers.items():
            logger.setLevel(level)
        yield
    finally:
        for logger, level in saved.items():
            logger.setLevel(level)


def point_latest(link: str, target: str) -> None:
    """Points the symlink ``link`` at ``target`` (relative: the folder can move), replacing it atomically."""
    temporary = f"{link}.tmp-{os.getpid()}"
    os.symlink(os.path.relpath(target, os.path.dirname(link)), temporary)
    os.replace(temporary, link)


def log_path_for(output_root: str, pipeline_name: str) -> str:
    return os.path.join(output_root, "logs", pipeline_name, time.strftime("%Y%m%d-%H%M%S") + ".log")


@contextlib.contextmanager
def captured(log_path: str, *, to_terminal: bool = False, terminal: TextIO = None,
             component_lines: bool = True) -> Iterator[Progress]:
    """Inside: fds 1 and 2 (every log line, print and child process) go to ``log_path``; progress to the terminal.

    ``to_terminal`` (--verbose): everything stays on the terminal, as before, with progress lines added.
    ``terminal``: where progress goes instead of the process's fd 1, e.g. a Jupyter cell's output stream
    (sys.stdout and sys.stderr then go to the log file too). ``component_lines``: see Progress.
    """
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    point_latest(os.path.join(os.path.dirname(log_path), "latest.log"), log_path)
    root = logging.getLogger()
    if to_terminal:  # Python's logging goes to the file as well (C++ and child processes only to the terminal)
        progress = Progress(terminal or sys.stdout, echo_to_log=False, component_lines=component_lines)
        file_handler = logging.FileHandler(log_path)
        file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        for handler in (progress, file_handler):
            root.addHandler(handler)
        try:
            yield progress
        finally:
            for handler in (progress, file_handler):
                root.removeHandler(handler)
                handler.close()
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    terminal_out = os.fdopen(os.dup(saved_out), "w", buffering=1)
    log_file = open(log_path, "a", buffering=1)
    os.dup2(log_file.fileno(), 1)
    os.dup2(log_file.fileno(), 2)
    # sys.stdout and sys.stderr stay on fds 1 and 2: what libraries print (Keras' epoch lines) is log. A given
    # terminal is a stream of its own (not fd 1): sys.stdout and sys.stderr then point at the log file meanwhile.
    saved_streams = (sys.stdout, sys.stderr)
    moved_handlers = []
    if terminal is not None:
        sys.stdout = sys.stderr = log_file
        moved_handlers = _move_stream_handlers(saved_streams, log_file)
    progress = Progress(terminal or terminal_out, component_lines=component_lines)
    root.addHandler(progress)
    try:
        yield progress
    except BaseException:
        logging.getLogger(__name__).exception("the run failed")  # the traceback, into the log
        raise
    finally:
        root.removeHandler(progress)
        progress.close()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        sys.stdout, sys.stderr = saved_streams
        for handler, stream in moved_handlers:
            handler.setStream(stream)
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(saved_out)
        os.close(saved_err)
        terminal_out.close()
        log_file.close()


def _move_stream_handlers(streams, target) -> list:
    """Points every logger's handlers that write to one of ``streams`` (absl's and TensorFlow's own among them)
    at ``target``; returns (handler, its stream) to restore."""
    moved = []
    loggers = [logging.getLogger()] + [logger for logger in list(logging.Logger.manager.loggerDict.values())
                                       if isinstance(logger, logging.Logger)]
    handlers = {id(h): h for logger in loggers for h in logger.handlers}
    for handler in handlers.values():
        handler = getattr(handler, "python_handler", handler)  # absl's ABSLHandler wraps a StreamHandler
        if isinstance(handler, logging.StreamHandler) and handler.stream in streams:
            moved.append((handler, handler.setStream(target)))
    return moved
