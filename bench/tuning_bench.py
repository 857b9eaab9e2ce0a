"""Trials per minute of the Tuner with 1 and 2 workers (KerasTuner's distributed mode), side by side on the
same Transform output: our Tuner executor as the pipeline configures it (components/custom/tuner.py's run_executor).

    flock /tmp/heavy.lock .venv/bin/python -m bench.tuning_bench [--transform DIR] [--trials 6] [--steps 200]

On the latest Transform output of the default pipeline (`make run` first), or of ``--transform``: a run's
``<pipeline root>/Transform`` folder (its latest transformed_examples and transform_graph). Writes
bench/results/tuning_bench.json.
"""
import argparse
import os
import tempfile
import time

from bench.common import figure, latest_artifacts, write_results
from pipeline.config import load_config


def _latest(directory: str) -> str:
    return os.path.join(directory, max(os.listdir(directory), key=int))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transform", help="a run's <pipeline root>/Transform (default: the default pipeline's)")
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    from components.custom.tuner import read_trials, run_executor
    from components.training.tuning_options import TuningOptions, tuner_custom_config
    from pipeline.pipeline import TUNER_FN

    cfg = load_config()
    if args.transform:
        transformed = {"examples_uri": _latest(os.path.join(args.transform, "transformed_examples")),
                       "transform_output": _latest(os.path.join(args.transform, "transform_graph"))}
    else:
        found = latest_artifacts()
        transformed = {"examples_uri": found["transformed_examples"], "transform_output": found["transform_graph"]}
    runs, figures = {}, []
    for workers in args.workers:
        options = TuningOptions(enabled=True, algorithm="random", max_trials=args.trials, seed=0, workers=workers)
        start = time.monotonic()
        outputs = run_executor(
            transformed["examples_uri"], transformed["transform_output"],
            tempfile.mkdtemp(prefix=f"tuning-bench-{workers}-"),
            tuner_custom_config(options, cfg.training, cfg.user_package, cfg.gate_metric.name, "bench"),
            tuner_fn=TUNER_FN, train_steps=args.steps, eval_steps=cfg.training.eval_steps)
        seconds = time.monotonic() - start
        record = read_trials(outputs["tuner_results"])
        per_minute = len(record["trials"]) * 60 / seconds
        runs[workers] = {"seconds": seconds, "search_seconds": record["search_seconds"],
                         "trials": len(record["trials"]), "trials_per_minute": per_minute,
                         "trial_seconds": [t["seconds"] for t in record["trials"]]}
        print(f"{workers} worker(s): {len(record['trials'])} trials of {args.steps} steps in {seconds:.1f} s "
              f"(search {record['search_seconds']:.1f} s): {per_minute:.2f} trials/min; trials "
              f"{', '.join(f'{s:.1f}' for s in runs[workers]['trial_seconds'])} s", flush=True)
        figures.append(figure(f"trials per minute, {workers} worker(s)", per_minute, "trials/min", better="higher"))
    print("results:", write_results("tuning_bench", {"runs": runs, "figures": figures,
                                                      "trials": args.trials, "steps": args.steps}))


if __name__ == "__main__":
    main()
