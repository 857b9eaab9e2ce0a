"""One `tfxp run` at a time per pipeline, and what a killed run left behind.

* **The lock** is an ``flock`` on a file beside the MLMD database (which is always local). The
  kernel drops it when its process dies, however it dies, so a killed run cannot leave it stuck;
  the file holds the owner's pid so that the second run can name it.
* **Abandoned executions.** A run killed mid-component leaves its execution RUNNING in MLMD
  forever and its half-written output folders on disk. Holding the lock, nothing else can be
  running: the next run marks such executions CANCELED (MLMD has no "abandoned" state; the
  ``abandoned_by`` property says why) and removes the folders TFX's launcher made for them, and
  any version a killed Pusher left half-copied in the serving directory.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from typing import Iterable, Iterator, List

from tfxp import nodes
from tfxp.errors import TfxpError

log = logging.getLogger(__name__)

_SYSTEM_DIR = ".system"  # tfx.orchestration.portable.outputs_utils: <node>/.system/...
_STATEFUL_INDEX = "__stateful_working_dir_index__"


class RunLockedError(RuntimeError, TfxpError):
    """Another `tfxp run` holds this pipeline's lock."""


@contextlib.contextmanager
def exclusive_run(metadata_path: str, pipeline_name: str) -> Iterator[None]:
    lock_path = metadata_path + ".lock"
    os.makedirs(os.path.dirname(lock_path), exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by child processes
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise RunLockedError(
                f"another tfxp run (pid {owner}) is running pipeline {pipeline_name!r} on {metadata_path}: "
                f"wait for it to finish, or stop it (kill {owner}) and run again") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def recover_abandoned(metadata_path: str, pipeline_name: str, pipeline_root: str,
                      serving_dirs: Iterable[str]) -> List[str]:
    """Marks the pipeline's unfinished executions CANCELED and removes their leftovers (call under the lock).

    Returns one description per execution recovered.
    """
    from ml_metadata.proto import metadata_store_pb2

    from pipeline.run_summary import open_store

    if not os.path.exists(metadata_path):
        return []
    store = open_store(metadata_path, writable=True)
    pipeline = store.get_context_by_type_and_name("pipeline", pipeline_name)
    if pipeline is None:
        return []
    unfinished = [e for e in store.get_executions_by_context(pipeline.id)
                  if e.last_known_state in (metadata_store_pb2.Execution.NEW, metadata_store_pb2.Execution.RUNNING)]
    if not unfinished:
        return []
    node_type = store.get_context_type("node").id
    prefix = pipeline_name + "."
    recovered, pusher_started = [], []
    for execution in unfinished:
        node = next((c.name[len(prefix):] for c in store.get_contexts_by_execution(execution.id)
                     if c.type_id == node_type and c.name.startswith(prefix)), None)
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(execution.create_time_since_epoch / 1000))
        execution.last_known_state = metadata_store_pb2.Execution.CANCELED
        execution.custom_properties["abandoned_by"].string_value = (
            f"tfxp run (pid {os.getpid()}) at {time.strftime('%Y-%m-%d %H:%M:%S')}: its run was stopped before it finished")
        store.put_executions([execution])
        removed = _remove_execution_dirs(os.path.join(pipeline_root, node), execution) if node else []
        recovered.append(f"{node or 'an unknown component'} (execution {execution.id}, started {started}; "
                         f"{len(removed)} unfinished output folder(s) removed)")
        if node in nodes.PUSHERS:
            pusher_started.append(execution.create_time_since_epoch / 1000)
    if pusher_started:
        published = _published_push_destinations(store)
        for serving_dir in serving_dirs:
            for path in _unpublished_versions(serving_dir, published, min(pusher_started)):
                _remove_tree(path)
                recovered.append(f"incomplete pushed version {path} (removed)")
    return recovered


def _remove_execution_dirs(node_dir: str, execution) -> List[str]:
    """The folders TFX's launcher made for ``execution``: <node>/<output key>/<id>, its .system dirs."""
    from tfx.dsl.io import fileio

    if not fileio.isdir(node_dir):
        return []
    candidates = [os.path.join(node_dir, key, str(execution.id))
                  for key in fileio.listdir(node_dir) if key.rstrip("/") != _SYSTEM_DIR]
    candidates.append(os.path.join(node_dir, _SYSTEM_DIR, "executor_execution", str(execution.id)))
    if _STATEFUL_INDEX in execution.custom_properties:
        index = execution.custom_properties[_STATEFUL_INDEX].string_value
        if index:
            candidates.append(os.path.join(node_dir, _SYSTEM_DIR, "stateful_working_dir", index))
    removed = []
    for path in candidates:
        if fileio.exists(path):
            _remove_tree(path)
            removed.append(path)
    return removed


def _published_push_destinations(store) -> set:
    pushed = set()
    for artifact in store.get_artifacts_by_type("PushedModel"):
        if "pushed_destination" in artifact.custom_properties:
            pushed.add(artifact.custom_properties["pushed_destination"].string_value.rstrip("/"))
    return pushed


def _unpublished_versions(serving_dir: str, published: set, since_seconds: float) -> List[str]:
    """Version folders a killed Pusher started: named by a time at or after its start, never published.

    TFX's Pusher names a version by the Unix time of the push and publishes it only at the end.
    """
    from tfx.dsl.io import fileio

    if not fileio.isdir(serving_dir):
        return []
    found = []
    for name in fileio.listdir(serving_dir):
        name = name.rstrip("/")
        path = os.path.join(serving_dir, name)
        if name.isdigit() and int(name) >= int(since_seconds) and path not in published:
            found.append(path)
    return found


def _remove_tree(path: str) -> None:
    from tfx.dsl.io import fileio

    if fileio.isdir(path):
        fileio.rmtree(path)
    else:
        fileio.remove(path)
