"""`tfxp dev` as a real process, driven by real file edits, for tests and benchmarks."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from typing import List, Optional

from pipeline.dev import WAITING
from bench.model_server import BackgroundProcess, free_port
from tests.support.marks import require

ITERATION = re.compile(r"^iteration (\d+) \(", re.MULTILINE)


class DevProcess(BackgroundProcess):
    """``tfxp dev --config CONFIG`` on free ports; its output in a file; waits for the loop's iterations."""

    STOP_SIGNAL = signal.SIGINT  # what a user's Ctrl-C sends

    def __init__(self, config_path: str, log_dir: str, pythonpath: Optional[str] = None, overrides: List[str] = ()):
        require("e2e", "runs the whole pipeline (tfxp dev)")
        self.grpc_port, self.rest_port = free_port(), free_port()
        self.output_path = os.path.join(log_dir, f"dev-{self.rest_port}.out")
        self.access_log = os.devnull
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        if pythonpath:
            env["PYTHONPATH"] = os.pathsep.join([pythonpath, env.get("PYTHONPATH", "")])
        self._output = open(self.output_path, "w")
        # cwd: not the project root, which `python -m` would put ahead of PYTHONPATH.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", "dev", "--config", config_path, f"--port={self.grpc_port}",
             f"--rest_api_port={self.rest_port}", *(f"--set={o}" for o in overrides)], stdout=self._output, stderr=subprocess.STDOUT, env=env,
            cwd=log_dir)
        self.url = f"http://127.0.0.1:{self.rest_port}"

    def output(self) -> str:
        if not self._output.closed:
            self._output.flush()
        with open(self.output_path) as f:
            return f.read()

    def iterations(self) -> List[str]:
        """Each finished iteration's summary, in order (the text from its `iteration N (` line to the next
        `waiting for a save` line)."""
        text = self.output()
        blocks = []
        for match in ITERATION.finditer(text):
            end = text.find(WAITING, match.start())
            if end < 0:
                break
            blocks.append(text[match.start():end])
        return blocks

    def wait_for_iteration(self, number: int, timeout: float = 900) -> str:
        """The summary of iteration ``number`` once the loop waits for the next save."""
        self.wait_until(lambda: len(self.iterations()) >= number, timeout, f"tfxp dev iteration {number}",
                        self.output, poll=0.5)
        return self.iterations()[number - 1]


def replace_in_file(path: str, pattern: str, replacement: str) -> None:
    """A data scientist's save: the file rewritten with ``pattern`` (a regex, one line) replaced."""
    with open(path) as f:
        text = f.read()
    edited, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
    assert count == 1, f"{pattern!r} is not in {path}"
    time.sleep(0.05)  # a new mtime, even on coarse clocks
    with open(path, "w") as f:
        f.write(edited)
