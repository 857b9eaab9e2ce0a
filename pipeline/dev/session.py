"""One warm process for the data scientist's loop: `tfxp dev`, or a notebook's ``DevSession``.

A session holds the pipeline's run lock (no `tfxp run` of the same pipeline meanwhile), keeps the
pushed model served (warm_server.ServedModel) and runs iterations: each reloads the user's files from
disk, runs the pipeline with the cache on (only what the edit affects executes; the InfraValidator
checks the candidate in this process), waits until a new pushed version serves, asks the server for a
prediction on the same example as before, remembers the run in MLMD (`tfxp runs`) and prints a few
lines (summary.py). An error in the user's files is one line; the session goes on.
"""
from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
import threading
import time
from typing import Iterable, List, Optional, Sequence, Set

from components.core.user_code import UserCodeError
from pipeline import local_runner, run_guard, run_log
from pipeline.code_fingerprint import user_package_reach
from pipeline.config import ConfigError, PipelineConfig, load_config
from pipeline.dev import reload, summary
from pipeline.dev.warm_server import InProcessRunner, ServedModel
from pipeline.dev.watch import Watcher
from pipeline.run_outcome import Outcome, read_outcome
from tfxp.nodes import PUSHER

log = logging.getLogger(__name__)

# What a changed config may not change while a session runs: they name the lock, MLMD and the served dir.
IDENTITY = ("pipeline_name", "resolved_metadata_path", "serving_model_dir")


class RestartNeeded(RuntimeError):
    """A change the warm process cannot take in: platform code, or what names the pipeline and its stores."""


class DevSession:
    """``DevSession(config_path)`` starts the server and takes the lock; ``iterate()`` runs one iteration and
    prints its summary; ``close()`` (or ``with``) stops the server and releases the lock."""

    def __init__(self, config_path: str, overrides: Sequence[str] = (), *, grpc_port: int, rest_port: int,
                 out=None, prepare_data: bool = True):
        self.config_path, self.overrides = os.path.abspath(config_path), list(overrides)
        # Where the user reads: a notebook cell's stream, or (a terminal) a copy of fd 1 that still points there
        # while an iteration sends fds 1 and 2, sys.stdout and sys.stderr to the run's log file.
        self.out = out or (sys.stdout if sys.stdout is not sys.__stdout__ else os.fdopen(os.dup(1), "w", buffering=1))
        self.stop = threading.Event()   # set: the running iteration starts no new component
        self.busy = False               # an iteration is running
        self.cfg = self._load_config()
        self._user_dir = os.path.abspath(self.cfg.user_code.directory)
        self._reach: Set[str] = set()
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(run_guard.exclusive_run(self.cfg.resolved_metadata_path, self.cfg.pipeline_name))
        try:
            if prepare_data:
                local_runner.ensure_data(self.cfg)
            self.server = ServedModel(self.cfg.pipeline_name, self.cfg.serving_model_dir, grpc_port, rest_port,
                                      self.cfg.request_log_server_flags)
            self.server.start()
            self._stack.callback(self.server.stop)
        except BaseException:
            self._stack.close()
            raise
        self.iterations: List[summary.Iteration] = []
        self._previous: Optional[Outcome] = None       # the last iteration that evaluated a candidate
        self._previous_output = None                   # the served model's last answer on the example
        self._example: Optional[bytes] = None
        self.watcher = Watcher(self.watched_files)
        self.watcher.mark()
        for stream in (sys.stdout, sys.stderr):  # what importing the libraries printed belongs to the start
            stream.flush()

    # -- what the loop watches -----------------------------------------------------------------------
    def _load_config(self) -> PipelineConfig:
        cfg = load_config(self.config_path, self.overrides)
        cfg.enable_cache = True  # the loop is about reusing what an edit does not touch
        return cfg

    def watched_files(self) -> Set[str]:
        """The files the cache fingerprints cover of the user package, the schema and the config file. While a
        file does not parse, what it imported stays watched (the last set that could be computed)."""
        files = {self.config_path} | _python_files(self._user_dir)
        try:
            self._reach = user_package_reach(self.cfg.user_package)
        except (UserCodeError, SyntaxError, ImportError, OSError, ValueError):
            pass
        files |= self._reach
        if self.cfg.resolved_schema_path:
            files.add(self.cfg.resolved_schema_path)
        return files

    def platform_changes(self, changed: Iterable[str]) -> List[str]:
        return sorted(reload.platform_files(changed))

    @property
    def endpoints(self) -> str:
        return f"127.0.0.1:{self.server.rest_port} (REST) and :{self.server.grpc_port} (gRPC)"

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    # -- one iteration -------------------------------------------------------------------------------
    def iterate(self, changed: Sequence[str] = ()) -> summary.Iteration:
        """Runs the pipeline once on the files as they are now; prints and returns what happened. The served
        model's answer is printed as soon as the Pusher is done (what else the edit affects, such as the TFLite
        branch, runs after it), the rest of the summary at the end."""
        start = time.monotonic()
        iteration = summary.Iteration(number=len(self.iterations) + 1, changed=list(changed), seconds=0.0)
        self.say(summary.header(iteration))
        self.busy, self.stop = True, threading.Event()
        started = False
        cfg = self.cfg
        log_path = None
        try:
            watched = self.watched_files()
            reload.check_syntax(watched, os.path.dirname(self._user_dir))
            reload.forget_user_code(self.cfg.user_package, watched)
            cfg = self._reloaded_config()
            log_path = run_log.log_path_for(cfg.resolved_output_root, cfg.pipeline_name)

            def on_start():
                nonlocal started
                started = True

            def on_done(node_id: str) -> None:
                if node_id == PUSHER:
                    self._serve_and_predict(cfg, iteration, start)

            with run_log.captured(log_path, terminal=self.out, component_lines=False) as progress, \
                    _validate_in_process(), _library_logs_at_info():
                local_runner.run_pipeline(cfg, progress, log_path, on_start=on_start, say_input=False,
                                          stop=self.stop, first_alone=True, on_done=on_done)
        except RestartNeeded:
            raise
        except Exception as e:  # noqa: BLE001 - any error of an iteration is reported, and the loop goes on
            from pipeline.parallel_runner import RunStopped

            if isinstance(e, RunStopped):
                iteration.stopped = True
            else:
                iteration.error = _one_line(cfg, e, log_path, self._user_dir)
        finally:
            self.busy = False
        if started:
            iteration.outcome = _read_outcome(cfg)
        iteration.seconds = time.monotonic() - start
        if started:
            local_runner.remember_run(cfg, "dev", iteration.seconds, outcome=iteration.outcome,
                                      failure=iteration.error or ("stopped by the user" if iteration.stopped else ""))
        iteration.served = self.served_version
        self.say(summary.format_result(iteration, self._previous, self.endpoints))
        if iteration.outcome is not None and iteration.outcome.gate_value is not None and not iteration.error:
            self._previous = iteration.outcome
        self.iterations.append(iteration)
        _free_memory()
        return iteration

    @property
    def served_version(self) -> Optional[int]:
        versions = self.server.versions
        return versions[-1] if versions else None

    def _reloaded_config(self) -> PipelineConfig:
        cfg = self._load_config()
        moved = [key for key in IDENTITY if getattr(cfg, key) != getattr(self.cfg, key)]
        if moved:
            raise RestartNeeded(f"{self.config_path}: {', '.join(moved)} changed")
        self.cfg = cfg
        return cfg

    def _serve_and_predict(self, cfg: PipelineConfig, iteration: summary.Iteration, start: float) -> None:
        """After the Pusher: when it pushed a version, waits until the server serves it, asks the server about
        the example and prints the answer (the first line the user waits for)."""
        pushed = _pushed_version(cfg)
        if pushed is None:
            return
        if not self.server.wait_until_serving(pushed):
            iteration.served_error = f"version {pushed} was pushed but the server did not load it (see the log)"
            self.say(f"  {iteration.served_error}")
            return
        try:
            if self._example is None:
                from serving import predict

                self._example = predict.first_raw_examples(cfg.resolved_data_root, "eval", 1)[0]
            task = cfg.user_code.task
            output = self.server.predict(self._example, pushed)
            label = self.server.label_of(self._example, task.label_key, pushed)
            iteration.prediction = summary.prediction_line(task, output, label, self._previous_output)
            self._previous_output = output
        except Exception as e:  # noqa: BLE001 - the summary says so; the loop goes on
            iteration.prediction = f"the served model did not answer: {e}"
        iteration.served_after = time.monotonic() - start
        self.say(summary.served_line(iteration, pushed))

    # -- the end --------------------------------------------------------------------------------------
    def close(self) -> None:
        self._stack.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@contextlib.contextmanager
def _validate_in_process():
    from components.custom.infra_validator import local_runner_override

    with local_runner_override(InProcessRunner):
        yield


@contextlib.contextmanager
def _library_logs_at_info():
    """TFX's and Beam's INFO lines (the progress lines read TFX's) go to the run's log during an iteration."""
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.INFO)
    try:
        yield
    finally:
        absl_logging.set_verbosity(absl_logging.WARNING)


def _one_line(cfg: PipelineConfig, error: BaseException, log_path: Optional[str], user_dir: str) -> str:
    """What went wrong, in one line naming the user's file where it can."""
    if isinstance(error, (UserCodeError, ConfigError)):
        return str(error)
    if log_path is None:  # before the pipeline: loading the user's files
        where = local_runner.user_code_line(error, user_dir)
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return f"{where + ': ' if where else ''}{type(error).__name__}: {message}"
    try:
        return str(local_runner.as_run_error(cfg, error, log_path))
    except Exception:  # noqa: BLE001 - describing the error must not fail
        return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


def _pushed_version(cfg: PipelineConfig) -> Optional[int]:
    """The version the Pusher wrote in its newest execution (None: it did not push, or it was cached)."""
    from ml_metadata.proto import metadata_store_pb2 as mlmd

    from pipeline import run_summary

    store = run_summary.open_store(cfg.resolved_metadata_path)
    node = store.get_context_by_type_and_name("node", f"{cfg.pipeline_name}.{PUSHER}")
    executions = store.get_executions_by_context(node.id) if node is not None else []
    if not executions or max(executions, key=lambda e: e.id).last_known_state != mlmd.Execution.COMPLETE:
        return None
    artifact = run_summary.latest_output_artifact(cfg.resolved_metadata_path, cfg.pipeline_name, PUSHER,
                                                  "pushed_model")
    if artifact is None or "pushed" not in artifact.custom_properties or \
            not artifact.custom_properties["pushed"].int_value:
        return None
    return int(artifact.custom_properties["pushed_version"].string_value)


def _read_outcome(cfg: PipelineConfig) -> Optional[Outcome]:
    try:
        return read_outcome(cfg)
    except Exception as e:  # noqa: BLE001
        log.warning("could not read the iteration's outcome: %s", e)
        return None


def _free_memory() -> None:
    """What an iteration leaves in TensorFlow's and Keras' global state goes before the next one, and the memory
    freed goes back to the system: glibc keeps freed blocks of its many threads' arenas otherwise, and the process
    grew by about 70 MB per model edit on the sample (bench/dev_bench.py: +1,446 MB over 20 edits), most of it
    freed memory held, not objects alive (measured: RSS after malloc_trim grew 10-17 MB per edit)."""
    import ctypes
    import ctypes.util

    import tf_keras

    tf_keras.backend.clear_session()
    gc.collect()
    libc = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(libc).malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # not glibc: nothing to give back this way
        pass


def _python_files(directory: str) -> Set[str]:
    """The package's own .py files (not its subfolders': for `components`, those are the platform)."""
    return {os.path.join(directory, name) for name in os.listdir(directory) if name.endswith(".py")}
