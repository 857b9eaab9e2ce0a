"""`tfxp serve` as a real process on free loopback ports, for the benchmarks and the tests (which sit above bench/)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Callable, List, Optional

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BackgroundProcess:
    """A server process a test starts: its access log's lines, and a graceful ``stop()`` with
    ``STOP_SIGNAL`` (killed after ``timeout``) returning the exit code; a context manager."""

    STOP_SIGNAL = signal.SIGTERM
    process: subprocess.Popen
    access_log: str
    _output = None  # the file the process writes its output to

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str, log: Callable[[], str],
                   poll: float = 0.2) -> None:
        """Returns once ``ready()``; raises (with the tail of ``log()``) when the process exits first
        or ``timeout`` passes, stopping it. A refused connection counts as not ready yet."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{what} exited with {self.process.returncode}:\n{log()[-3000:]}")
            try:
                if ready():
                    return
            except requests.ConnectionError:
                pass
            time.sleep(poll)
        self.stop()
        raise TimeoutError(f"{what} was not ready within {timeout} s:\n{log()[-3000:]}")

    def access_lines(self) -> List[str]:
        if not os.path.exists(self.access_log):
            return []
        with open(self.access_log) as f:
            return f.read().splitlines()

    def stop(self, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(self.STOP_SIGNAL)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._output is not None:
            self._output.close()
        return self.process.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class ModelServerProcess(BackgroundProcess):
    """Starts ``tfxp serve`` with the given flags; ``stop()`` sends SIGTERM and returns the exit code."""

    def __init__(self, flags: List[str], log_dir: str, wait_for_model: Optional[str] = None, timeout: float = 90):
        self.grpc_port, self.rest_port = free_port(), free_port()
        self.log_path = os.path.join(log_dir, f"serve-{self.rest_port}.log")
        self.access_log = os.path.join(log_dir, f"access-{self.rest_port}.log")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        command = [sys.executable, "-m", "pipeline.cli", "serve", f"--port={self.grpc_port}",
                   f"--rest_api_port={self.rest_port}", f"--access_log={self.access_log}", *flags]
        self._log = self._output = open(self.log_path, "w")
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=log_dir)
        self.url = f"http://127.0.0.1:{self.rest_port}"
        self.grpc_target = f"127.0.0.1:{self.grpc_port}"
        self._wait(wait_for_model, timeout)

    def _wait(self, model: Optional[str], timeout: float) -> None:
        def serving() -> bool:
            if model is None:
                requests.get(self.url + "/v1/models", timeout=1)
                return True
            status = requests.get(f"{self.url}/v1/models/{model}", timeout=1)
            return status.ok and any(v["state"] == "AVAILABLE" for v in status.json()["model_version_status"])

        self.wait_until(serving, timeout, f"tfxp serve (serving {model or 'anything'})", self.log)

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        with open(self.log_path) as f:
            return f.read()
