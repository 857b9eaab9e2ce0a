"""Every benchmark, one after the other, then one table of figures against targets (`make bench`).

Each benchmark runs in its own process; its full output goes to bench/results/logs/<name>.log and
its figures come from the JSON it writes (the "figures" list, see bench/common.py). The table and
every benchmark's status go to bench/results/summary.json. A benchmark that fails is a row of the
table and makes the exit status non-zero at the end; the others still run. A missed target is a
figure, not a failure.

The input, TFLite and serving benchmarks measure the latest default run (`make run`): when there
is none, one `tfxp run` comes first.

    python -m bench.run_all [--only NAME ...] [--skip NAME ...]
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time
from typing import Iterable, List, Optional, Sequence

from bench.common import RESULTS_DIR, kill_tree, write_results
from pipeline.config import PROJECT_ROOT

# (module under bench/, its results file under bench/results/, needs the latest default run's outputs),
# in the order they run: the quick ones on the default run's artifacts first, the whole-pipeline ones last.
BENCHMARKS = [
    ("input_bench", "input.json", True),
    ("trainer_bench", "trainer.json", True),
    ("tuning_bench", "tuning_bench.json", True),
    ("tflite_bench", "tflite.json", True),
    ("evaluator_bench", "evaluator.json", True),
    ("transform_bench", "transform_bench.json", True),
    ("serving_bench", "serving_bench.json", True),
    ("data_bench", "data_bench.json", False),
    ("beam_presets", "beam_presets.json", False),
    ("pipeline_bench", "pipeline_bench.json", False),
    ("dev_bench", "dev_bench.json", False),
    ("scale_bench", "scale.json", False),
]
NAMES = [name for name, _, _ in BENCHMARKS]
NOT_BENCHMARKS = {"__init__", "common", "model_server", "run_all"}  # modules of bench/ that are not benchmarks
LOGS_DIR = os.path.join(RESULTS_DIR, "logs")
HEARTBEAT_SECONDS = 60
TIMEOUT_SECONDS = 45 * 60  # per benchmark; the longest (pipeline_bench) takes about 10 minutes here
# Longer limits: the scale benchmark runs the pipeline on a million rows (about 26 minutes in all here).
TIMEOUTS = {"scale_bench": 2 * 3600}
TIMED_OUT = -1000


def select(only: Optional[Sequence[str]], skip: Optional[Sequence[str]]) -> List[str]:
    """The benchmarks to run, in the run order."""
    unknown = [n for n in list(only or []) + list(skip or []) if n not in NAMES]
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(NAMES)}")
    return [n for n in NAMES if (not only or n in only) and n not in (skip or [])]


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


# -- the table -----------------------------------------------------------------------------------

def format_value(value, unit: str) -> str:
    if value is None:
        return "-"
    magnitude = abs(value)
    text = (f"{value:,.0f}" if magnitude >= 1000 else f"{value:.1f}" if magnitude >= 10 else
            f"{value:.2f}" if magnitude >= 0.1 or value == 0 else f"{value:.4f}")
    return text + ("x" if unit == "x" else f" {unit}" if unit else "")


def format_target(target, better: str, unit: str) -> str:
    if target is None:
        return "-"
    return ("<= " if better == "lower" else ">= ") + format_value(target, unit)


def format_met(met) -> str:
    return {True: "yes", False: "NO", None: "-"}[met]


def table_rows(benchmarks: Iterable[dict]) -> List[List[str]]:
    """One row per figure; a benchmark that failed or wrote no figures is one row that says so."""
    rows = []
    for bench in benchmarks:
        if bench["status"] != "ok":
            rows.append([bench["name"], f"{bench['status'].upper()}: {bench.get('error', '')} (log: "
                         f"{os.path.relpath(bench['log'], PROJECT_ROOT) if bench.get('log') else '-'})", "", "", ""])
            continue
        if not bench["figures"]:
            rows.append([bench["name"], "(no figures)", "", "", ""])
        for f in bench["figures"]:
            rows.append([bench["name"], f["name"], format_value(f["value"], f["unit"]),
                         format_target(f["target"], f["better"], f["unit"]), format_met(f["met"])])
    return rows


def format_table(benchmarks: Iterable[dict]) -> str:
    header = ["benchmark", "figure", "value", "target", "met"]
    rows = table_rows(benchmarks)
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    align = ["<", "<", ">", ">", "<"]

    def line(cells):
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths)).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def format_markdown(benchmarks: Iterable[dict]) -> str:
    rows = table_rows(benchmarks)
    return "\n".join(["| benchmark | figure | value | target | met |", "| --- | --- | --- | --- | --- |"]
                     + ["| " + " | ".join(r) + " |" for r in rows])


# -- running -------------------------------------------------------------------------------------

def run_logged(command: List[str], log_path: str, label: str, timeout: float = TIMEOUT_SECONDS) -> int:
    """Runs ``command`` with stdout and stderr into ``log_path``; a line every minute while it runs. Past
    ``timeout`` it is stopped with every process it started, and the exit code is TIMED_OUT."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    start = time.monotonic()
    with open(log_path, "w") as log:
        log.write(" ".join(command) + "\n\n")
        log.flush()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=PROJECT_ROOT)
        done = threading.Event()

        def heartbeat():
            while not done.wait(HEARTBEAT_SECONDS):
                print(f"    ... {label} still running, {duration(time.monotonic() - start)}; "
                      f"last log line: {last_line(log_path)[:120]}", flush=True)
        watcher = threading.Thread(target=heartbeat, daemon=True)
        watcher.start()
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            kill_tree(process)
            log.write(f"\nstopped by bench.run_all after {duration(timeout)}\n")
            return TIMED_OUT
        except BaseException:  # Ctrl-C: no benchmark left behind
            kill_tree(process)
            raise
        finally:
            done.set()


def last_line(path: str) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 4096))
            lines = [l for l in f.read().decode(errors="replace").splitlines() if l.strip()]
        return lines[-1].strip() if lines else ""
    except OSError:
        return ""


def default_run_exists() -> Optional[str]:
    """None when the latest default run has what the benchmarks read (Trainer and Transform outputs, a pushed
    model); otherwise what is missing."""
    from pipeline import run_summary
    from pipeline.config import load_config
    from serving import predict

    cfg = load_config()
    try:
        run_summary.latest_pipeline_outputs(cfg)
    except FileNotFoundError as e:
        return str(e)
    if predict.latest_version(cfg.serving_model_dir) is None:
        return f"no pushed model under {cfg.serving_model_dir}"
    return None


def check_default_run() -> Optional[str]:
    """default_run_exists() in a fresh process (it imports TensorFlow, which this process does not need)."""
    done = subprocess.run([sys.executable, "-m", "bench.run_all", "--check-default-run"], capture_output=True,
                          text=True, cwd=PROJECT_ROOT)
    if done.returncode != 0:
        return (done.stdout.strip() or done.stderr.strip()[-500:] or f"exit {done.returncode}")
    return None


def run_benchmark(name: str, results_file: str, position: str) -> dict:
    log = os.path.join(LOGS_DIR, f"{name}.log")
    results_path = os.path.join(RESULTS_DIR, results_file)
    print(f"[{position}] {name} (log: {os.path.relpath(log, PROJECT_ROOT)})", flush=True)
    start_epoch, start = time.time(), time.monotonic()
    timeout = TIMEOUTS.get(name, TIMEOUT_SECONDS)
    code = run_logged([sys.executable, "-m", f"bench.{name}"], log, name, timeout)
    seconds = time.monotonic() - start
    bench = {"name": name, "exit_code": code, "seconds": seconds, "log": log, "results": results_path,
             "figures": []}
    if code == TIMED_OUT:
        bench.update(status="failed", error=f"stopped after {duration(timeout)}")
    elif code != 0:
        bench.update(status="failed", error=f"exit {code}: {last_line(log)[:200]}")
    elif not os.path.exists(results_path) or os.path.getmtime(results_path) < start_epoch:
        bench.update(status="failed", error=f"wrote no {os.path.relpath(results_path, PROJECT_ROOT)}")
    else:
        with open(results_path) as f:
            bench.update(status="ok", figures=json.load(f).get("figures", []))
    print(f"    {bench['status']} in {duration(seconds)}", flush=True)
    return bench


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", metavar="NAME", help=f"run only these (of: {', '.join(NAMES)})")
    parser.add_argument("--skip", nargs="+", metavar="NAME", help="run all but these")
    parser.add_argument("--check-default-run", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.check_default_run:
        missing = default_run_exists()
        print(missing or "ok")
        return 1 if missing else 0
    chosen = select(args.only, args.skip)
    start = time.monotonic()
    benchmarks = []
    needs_run = any(needs for name, _, needs in BENCHMARKS if name in chosen)
    missing = check_default_run() if needs_run else None
    if missing:
        print(f"[setup] the input, TFLite and serving benchmarks read the latest default run, and there is none "
              f"({missing}): tfxp run (log: bench/results/logs/tfxp_run.log)", flush=True)
        code = run_logged([sys.executable, "-m", "pipeline.cli", "run"], os.path.join(LOGS_DIR, "tfxp_run.log"),
                          "tfxp run")
        print(f"    exit {code} after {duration(time.monotonic() - start)}", flush=True)
        if code != 0:
            benchmarks.append({"name": "tfxp run", "status": "failed", "exit_code": code, "seconds": 0,
                               "log": os.path.join(LOGS_DIR, "tfxp_run.log"), "figures": [],
                               "error": f"exit {code}: the default run the benchmarks read"})
    for i, name in enumerate(chosen, 1):
        results_file = next(f for n, f, _ in BENCHMARKS if n == name)
        benchmarks.append(run_benchmark(name, results_file, f"{i}/{len(chosen)}, {duration(time.monotonic() - start)}"
                                        " elapsed"))
    total = time.monotonic() - start
    print(f"\nall benchmarks in {duration(total)}: "
          + ", ".join(f"{b['name']} {duration(b['seconds'])}" for b in benchmarks if b["seconds"]) + "\n")
    print(format_table(benchmarks))
    path = write_results("summary", {"total_seconds": total, "benchmarks": benchmarks,
                                     "table_markdown": format_markdown(benchmarks)})
    failed = [b["name"] for b in benchmarks if b["status"] != "ok"]
    print(f"\nwrote {path}" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
