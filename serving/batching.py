"""Server-side batching: concurrent requests to one signature run as one batch.

Two implementations of TF Serving's ``BatchingParameters`` (max_batch_size, batch_timeout_micros,
num_batch_threads, max_enqueued_batches, allowed_batch_sizes), chosen with ``--batching_implementation``:

* ``scheduler`` (default): a batch scheduler in front of the signature, as TF Serving's
  ``BatchingSession`` + ``SharedBatchScheduler``: requests queue their rows, up to
  num_batch_threads threads each take the open batch when it is full or its oldest request has
  waited batch_timeout_micros, run the signature once, and hand every request its rows back.
* ``tf_op``: TensorFlow's own ``BatchFunction`` kernel (what TF Serving's in-graph batching uses,
  ``tf.nondifferentiable_batch_function``), see ``servable.Signature``.

``bench/serving_bench.py`` measures both side by side; the scheduler wins here because each
request through the op still pays a whole eager function call in Python.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable, Deque, Dict, List, Optional

import numpy as np

from serving import errors

IMPLEMENTATIONS = ("scheduler", "tf_op")


class _Task:
    __slots__ = ("inputs", "rows", "key", "enqueued", "done", "result", "error")

    def __init__(self, inputs: Dict[str, np.ndarray], rows: int, key):
        self.inputs, self.rows, self.key = inputs, rows, key
        self.enqueued = time.monotonic()
        self.done = threading.Event()
        self.result: Optional[Dict[str, np.ndarray]] = None
        self.error: Optional[BaseException] = None


class BatchScheduler:
    """Merges concurrent calls of ``run`` (numpy inputs keyed by alias, batch on dimension 0)."""

    def __init__(self, run: Callable[[Dict[str, np.ndarray]], Dict[str, np.ndarray]], options, name: str = ""):
        self._run = run
        self.options = options
        self._timeout = options.batch_timeout_micros / 1e6
        self._max_rows = options.max_batch_size
        self._max_queued = options.max_batch_size * max(1, options.max_enqueued_batches)
        self._queue: Deque[_Task] = deque()
        self._queued_rows = 0
        self._cond = threading.Condition()
        self._threads = [threading.Thread(target=self._loop, name=f"batch-{name}-{i}", daemon=True)
                         for i in range(max(1, options.num_batch_threads))]
        self._stopped = False
        for thread in self._threads:
            thread.start()

    def submit(self, inputs: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        sizes = {value.shape[0] if value.ndim else -1 for value in inputs.values()}
        if len(sizes) != 1 or -1 in sizes:
            raise errors.invalid_argument("Batching session Run() input tensors must have equal 0th-dimension size")
        rows = sizes.pop()
        if rows > self._max_rows:
            raise errors.invalid_argument(
                f"Task size {rows} is larger than maximum input batch size {self._max_rows}")
        key = tuple(sorted((k, v.dtype.str, v.shape[1:]) for k, v in inputs.items()))
        task = _Task(inputs, rows, key)
        with self._cond:
            if self._stopped:  # the version was unloaded after this request picked it: run it alone
                return self._run(inputs)
            if self._queued_rows + rows > self._max_queued:
                raise errors.unavailable("The batch scheduling queue to which this task was submitted is full")
            self._queue.append(task)
            self._queued_rows += rows
            self._cond.notify()
        task.done.wait()
        if task.error is not None:
            raise task.error
        return task.result

    def stop(self) -> None:
        """Runs what is queued, then ends the threads."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def _take(self) -> Optional[List[_Task]]:
        with self._cond:
            while True:
                while not self._queue and not self._stopped:
                    self._cond.wait()
                if not self._queue:
                    return None  # stopped, and nothing left to run
                first = self._queue[0]
                deadline = first.enqueued + self._timeout
                while self._queue and self._queue[0] is first:
                    rows = sum(t.rows for t in self._queue if t.key == first.key)
                    wait = deadline - time.monotonic()
                    if rows >= self._max_rows or wait <= 0 or self._stopped:
                        break
                    self._cond.wait(wait)
                if not self._queue or self._queue[0] is not first:
                    continue  # another thread took it
                batch, rows, rest = [], 0, deque()
                while self._queue:
                    task = self._queue.popleft()
                    if task.key == first.key and rows + task.rows <= self._max_rows:
                        batch.append(task)
                        rows += task.rows
                    else:
                        rest.append(task)
                self._queue = rest
                self._queued_rows -= rows
                if self._queue:
                    self._cond.notify()
                return batch

    def _loop(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            try:
                self._execute(batch)
            except BaseException as e:  # noqa: BLE001 - every waiting request gets the error
                for task in batch:
                    task.error = e
                    task.done.set()

    def _execute(self, batch: List[_Task]) -> None:
        rows = sum(t.rows for t in batch)
        padded = _padded_size(rows, self.options.allowed_batch_sizes)
        inputs = {}
        for key in batch[0].inputs:
            parts = [t.inputs[key] for t in batch]
            if padded > rows:  # as TF Serving: pad with copies of the first row
                parts.append(np.repeat(parts[0][:1], padded - rows, axis=0))
            inputs[key] = parts[0] if len(parts) == 1 else np.concatenate(parts)
        outputs = self._run(inputs)
        start = 0
        for task in batch:
            task.result = {k: v[start:start + task.rows] for k, v in outputs.items()}
            start += task.rows
            task.done.set()


def _padded_size(rows: int, allowed: List[int]) -> int:
    for size in allowed:
        if size >= rows:
            return size
    return rows
