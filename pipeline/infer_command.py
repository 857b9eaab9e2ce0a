"""`tfxp infer --data PATH`: the pipeline run with its batch scoring branch on for PATH (pipeline/inference.py),
then where the PredictionLogs and the CSV of the scored rows are, and the CSV's first rows."""
from __future__ import annotations

from typing import List

from tfxp.files import is_remote


def first_rows(csv_path: str, count: int) -> List[str]:
    """The header and the first ``count`` lines after it of the scored CSV."""
    with open(csv_path, encoding="utf-8") as f:
        return [line.rstrip("\n") for _, line in zip(range(count + 1), f)]


def infer(cfg, *, show: int = 5, verbose: bool = False) -> int:
    """`tfxp infer`: the pipeline with the branch on for ``cfg.inference.data`` (the rest cached when nothing
    changed), then where the PredictionLogs and the CSV are and the CSV's first rows. 1 when nothing was
    scored (the model is not blessed)."""
    from pipeline import local_runner
    from pipeline.inference import describe_scoring, scored_rows, stage_rows

    stage_rows(cfg)  # a bad file fails here, in one line, before the training data, the lock and the pipeline
    local_runner.ensure_data(cfg)  # the training data, as tfxp run: the branch scores this pipeline's model
    seconds, log_path = local_runner.run_and_record(cfg, "infer", verbose=verbose)
    print(f"Pipeline {cfg.pipeline_name!r} finished in {seconds:.1f}s (full log: {log_path}).")
    summary = scored_rows(cfg)
    for line in describe_scoring(cfg, summary):
        print(line)
    if not summary or not summary["scored"]:
        return 1
    if show > 0 and summary["csv"] and not is_remote(summary["csv"]):
        print(f"The first {min(show, summary['rows'])} rows:")
        for line in first_rows(summary["csv"], show):
            print(f"  {line}")
    return 0
