"""`tfxp dev` against a full run, side by side in one run: how soon a save of model.py is served, and memory.

1. A full run (`tfxp run`, cache on, a fresh output root, a copy of the user package): its wall seconds.
2. `tfxp dev` on that root and package: iteration 1 (everything cached), then N edits of model.py (each one new:
   the last hidden layer gets 1 more unit, so no edit is a cache hit), each timed from the moment the file is
   written to the moment `tfxp dev` prints the new version's `served:` line (the server answered it), and to the
   end of the iteration. After iteration 1 and after each edit: the resident memory of the dev process tree.

Figures: the median save -> served / the full run (target <= 0.2), the memory growth over the N edits (target
<= 500 MB), and the floor beside them: the Trainer's fit alone, one export, one evaluation (from the last
iteration's log and MLMD). Writes bench/results/dev_bench.json.

    python -m bench.dev_bench [--edits N] [--keep DIR]      # N: 20 (BENCH_DEV_EDITS)
"""
import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from typing import List, Optional, Tuple

from bench.common import figure, kill_tree, write_results
from bench.pipeline_bench import (BENCH_USER_PACKAGE, LOGS_DIR, RunFailed, breakdown, component_times,
                                  copy_user_package, ours_command, timed_run, tfxp)
from pipeline.config import PROJECT_ROOT, load_config
from pipeline.dev import WAITING
from tfxp import nodes

TARGETS = {"served_over_full_run_max": 0.2, "memory_growth_mb_max": 500}
DEFAULT_EDITS = int(os.environ.get("BENCH_DEV_EDITS", "20"))
ITERATION_TIMEOUT = 600
SERVED = re.compile(r"^  served: version (\d+)")
DONE = re.compile(r"^  done in ([\d.]+) s")
HIDDEN_UNITS = re.compile(r"^HIDDEN_UNITS = \(([\d\s,]+)\)", re.MULTILINE)


class DevLoop:
    """`tfxp dev` in a subprocess: every line it prints, with the monotonic time it arrived."""

    def __init__(self, command: List[str], env: dict, log_path: str):
        self.lines: List[Tuple[float, str]] = []
        self._log = open(log_path, "w")
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self._log, env=env, cwd=PROJECT_ROOT,
                                        text=True, bufsize=1)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))
            self._log.write(line)
            self._log.flush()

    def wait_for(self, pattern: re.Pattern, after: float, timeout: float = ITERATION_TIMEOUT) -> Tuple[float, str]:
        """The first line matching ``pattern`` that arrived after ``after`` (monotonic seconds)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for arrived, line in list(self.lines):
                if arrived >= after and pattern.search(line):
                    return arrived, line
            if self.process.poll() is not None:
                raise RunFailed(f"tfxp dev exited with {self.process.returncode}: "
                                + "\n".join(line for _, line in self.lines[-30:]))
            time.sleep(0.05)
        raise RunFailed(f"tfxp dev printed no line matching {pattern.pattern!r} within {timeout:.0f} s")

    def memory_mb(self) -> float:
        """Resident memory of the dev process and its children."""
        import psutil

        root = psutil.Process(self.process.pid)
        total = 0
        for process in [root] + root.children(recursive=True):
            try:
                total += process.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total / 2 ** 20

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(120)
            except subprocess.TimeoutExpired:
                kill_tree(self.process)
        self._reader.join(5)
        self._log.close()
        return self.process.returncode


def widen_last_layer(model_py: str) -> str:
    """A new edit each time: the last hidden layer one unit wider. Returns the new HIDDEN_UNITS line."""
    with open(model_py) as f:
        text = f.read()
    found = HIDDEN_UNITS.search(text)
    if found is None:
        raise RunFailed(f"{model_py} has no `HIDDEN_UNITS = (...)` line to edit")
    units = [int(u) for u in found.group(1).replace(" ", "").split(",") if u]
    units[-1] += 1
    line = f"HIDDEN_UNITS = ({', '.join(map(str, units))}{',' if len(units) == 1 else ''})"
    with open(model_py + ".tmp", "w") as f:
        f.write(text[:found.start()] + line + text[found.end():])
    os.replace(model_py + ".tmp", model_py)  # as an editor saves: the whole file at once
    return line


def floor_figures(log_dir: str) -> dict:
    """The physical floor of an iteration, from the newest iteration's run log: the Trainer's fit alone and one
    export (the Trainer logs both), and one evaluation (the evaluator's seconds from MLMD)."""
    logs = sorted(os.path.join(log_dir, name) for name in os.listdir(log_dir) if name.endswith(".log")
                  and name != "latest.log")
    found = {}
    if logs:
        with open(logs[-1], errors="replace") as f:
            text = f.read()
        # components/training/trainer.py: "Trainer times: model 0.5 s, inputs 0.3 s, fit 12.8 s (...), export 1.9 s"
        for key, pattern in (("fit_seconds", r"Trainer times: .*\bfit ([\d.]+) s"),
                             ("export_seconds", r"Trainer times: .*\bexport ([\d.]+) s")):
            values = re.findall(pattern, text)
            if values:
                found[key] = float(values[-1])
    return found


def run(tmp: str, edits: int) -> dict:
    cfg = load_config()
    code_parent, root = os.path.join(tmp, "user_code"), os.path.join(tmp, "dev")
    package = copy_user_package(cfg.user_code.directory, code_parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([code_parent] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    print("1. a full run (cache on, fresh root)", flush=True)
    command = ours_command(root, "in_memory", force=False, user_package=BENCH_USER_PACKAGE)
    metadata = load_config(overrides=[f"output_root={root}"]).resolved_metadata_path
    full = breakdown(timed_run("full run", command, os.path.join(LOGS_DIR, "dev_full.log"), env),
                     component_times(metadata, cfg.pipeline_name))
    print(f"2. tfxp dev, then {edits} edits of {BENCH_USER_PACKAGE}/model.py", flush=True)
    from components.custom.infra_validator import free_loopback_port

    dev_command = tfxp() + ["dev", "--set", f"output_root={root}", "--set", f"user_package={BENCH_USER_PACKAGE}",
                            f"--port={free_loopback_port()}", f"--rest_api_port={free_loopback_port()}"]
    loop = DevLoop(dev_command, dict(env, TF_CPP_MIN_LOG_LEVEL="2"), os.path.join(LOGS_DIR, "dev_loop.log"))
    iterations = []
    try:
        started = time.monotonic()
        first_done, _ = loop.wait_for(re.compile(re.escape(WAITING)), started)
        memory_start = loop.memory_mb()
        print(f"  iteration 1 (all cached): {first_done - started:.1f} s after the start; {memory_start:.0f} MB",
              flush=True)
        for i in range(1, edits + 1):
            edit = widen_last_layer(os.path.join(package, "model.py"))
            saved = time.monotonic()
            served_at, served = loop.wait_for(SERVED, saved)
            done_at, done = loop.wait_for(re.compile(re.escape(WAITING)), served_at)
            memory = loop.memory_mb()
            iterations.append({"edit": edit, "served_seconds": served_at - saved, "done_seconds": done_at - saved,
                               "memory_mb": memory, "version": SERVED.search(served).group(1)})
            print(f"  edit {i:>2} ({edit}): served after {served_at - saved:5.1f} s, done after "
                  f"{done_at - saved:5.1f} s, {memory:.0f} MB", flush=True)
    finally:
        code = loop.stop()
    if code != 0:
        raise RunFailed(f"tfxp dev did not stop cleanly on Ctrl-C (exit {code}); see {LOGS_DIR}/dev_loop.log")
    served = statistics.median(it["served_seconds"] for it in iterations)
    done = statistics.median(it["done_seconds"] for it in iterations)
    growth = iterations[-1]["memory_mb"] - memory_start if iterations else 0.0
    evaluator = [c["seconds"] for c in component_times(metadata, cfg.pipeline_name) if c["component"] == nodes.EVALUATOR
                 and c["state"] == "COMPLETE"]
    floor = floor_figures(os.path.join(root, "logs", cfg.pipeline_name))
    if evaluator:
        floor["evaluation_seconds"] = evaluator[-1]
    results = {"full_run": full, "edits": iterations, "memory_start_mb": memory_start, "memory_growth_mb": growth,
               "served_median_seconds": served, "done_median_seconds": done,
               "served_over_full_run": served / full["wall_seconds"], "floor": floor, "targets": TARGETS}
    print(f"save -> served (median of {len(iterations)}): {served:.1f} s = {served / full['wall_seconds']:.2f} of a "
          f"full run ({full['wall_seconds']:.1f} s; target <= {TARGETS['served_over_full_run_max']}); the whole "
          f"iteration {done:.1f} s; memory {memory_start:.0f} MB -> {memory_start + growth:.0f} MB ({growth:+.0f} MB "
          f"over {len(iterations)} edits; target <= {TARGETS['memory_growth_mb_max']}); floor: {floor}", flush=True)
    return results


def figures_of(results: dict) -> list:
    floor = results["floor"]
    return [
        figure("tfxp dev: save of model.py -> new version served and its prediction printed / full run",
               results["served_over_full_run"], "x", TARGETS["served_over_full_run_max"], "lower"),
        figure(f"tfxp dev: memory growth over {len(results['edits'])} model edits", results["memory_growth_mb"], "MB",
               TARGETS["memory_growth_mb_max"], "lower"),
        figure("tfxp dev: save -> served, median", results["served_median_seconds"], "s"),
        figure("tfxp dev: save -> whole iteration done (TFLite branch included), median",
               results["done_median_seconds"], "s"),
        figure("floor: the Trainer's fit alone", floor.get("fit_seconds"), "s"),
        figure("floor: one export", floor.get("export_seconds"), "s"),
        figure("floor: one evaluation (evaluator)", floor.get("evaluation_seconds"), "s"),
    ]


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edits", type=int, default=DEFAULT_EDITS, help=f"model.py edits (default {DEFAULT_EDITS})")
    parser.add_argument("--keep", metavar="DIR", help="run in DIR and keep its outputs (default: a temp dir)")
    args = parser.parse_args(argv)
    from pipeline.local_runner import ensure_data

    ensure_data(load_config())
    tmp = args.keep or tempfile.mkdtemp(prefix="dev-bench-")
    try:
        results = run(tmp, args.edits)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    results["figures"] = figures_of(results)
    print(f"wrote {write_results('dev_bench', results)}")


if __name__ == "__main__":
    try:
        main()
    except RunFailed as e:
        raise SystemExit(str(e)) from None
