"""`tfxp report`: one self-contained HTML page about one pipeline run, from MLMD and the run's artifacts.

    write_report(cfg)                        # the newest run -> <output_root>/reports/<pipeline>/<run id>.html
    write_report(cfg, run_id, "page.html")   # a given run, to a given file

Sections: the run (status, wall time), data (rows per split, per-feature statistics, anomalies),
tuning (the Tuner's trials, when the run tuned),
training (the Trainer's TensorBoard curves), evaluation (TFMA metrics overall and per slice, the
candidate beside its baseline, the thresholds, the blessing), TFLite (the tflite_evaluator's table,
the lite push), push (InfraValidator, Pusher) and components (state, wall time, timeline). Plots are
PNGs embedded as data URIs: the page needs no network, no JavaScript and no other file. A section
whose component did not run, failed or left unreadable output says so in one line: the report of a
failed run is the one most worth reading.

The modules, by what they read and what they draw (each imports only those above it):

    formats.py     numbers and messages in words
    runs.py        the run: its components and their artifacts (MLMD, through pipeline/run_summary.py)
    plots.py       the plots (matplotlib), from plain numbers, as PNG data URIs
    data.py        StatisticsGen's statistics and ExampleValidator's anomalies
    training.py    the Trainer's TensorBoard logs
    tuning.py      the Tuner's trials (trials.json)
    evaluation.py  the Evaluator's TFMA metrics, thresholds and validation
    push.py        the TFLite evaluator's table, the InfraValidator's verdict, the Pushers' pushes
    overview.py    the header and the components' table and timeline
    render.py      the page (jinja2: pipeline/templates/report.html.j2)

The command line (`tfxp report`) is pipeline/cli.py's.
"""
from __future__ import annotations

import logging
import os
from typing import Optional

from pipeline import run_summary
from pipeline.report.evaluation import describe_threshold, read_evaluation
from pipeline.report.push import push_section
from pipeline.report.render import render_report
from pipeline.report.runs import read_run
from pipeline.report.training import read_scalars, training_curves
from pipeline.report.tuning import trials_view
from pipeline.run_log import point_latest, quiet_libraries
from tfxp.files import write_atomically

# The API, and the readers other modules use (pipeline/run_outcome.py, the tests).
__all__ = ["write_report", "default_report_dir", "latest_run_id", "read_run", "read_evaluation", "push_section",
           "describe_threshold", "read_scalars", "training_curves", "trials_view"]

log = logging.getLogger(__name__)


def default_report_dir(cfg) -> str:
    return os.path.join(cfg.resolved_output_root, "reports", cfg.pipeline_name)


def latest_run_id(cfg) -> str:
    """The id of the newest run of ``cfg``'s pipeline; FileNotFoundError when it has none."""
    with quiet_libraries():
        return run_summary.open_runs(cfg.resolved_metadata_path, cfg.pipeline_name)[1][-1].name


def write_report(cfg, run_id: Optional[str] = None, path: Optional[str] = None) -> str:
    """Writes the report of run ``run_id`` (default: the newest) of ``cfg``'s pipeline to ``path``; returns
    the path written.

    Default path: <output_root>/reports/<pipeline>/<run id>.html, and latest.html there points at
    the newest run's report.
    """
    with quiet_libraries():
        run = read_run(cfg.resolved_metadata_path, cfg.pipeline_name, run_id)
        log.info("reporting run %s of %r (%d components)", run.run_id, run.pipeline_name, len(run.components))
        html = render_report(run, cfg)
    written = path or os.path.join(default_report_dir(cfg), f"{run.run_id.replace(os.sep, '_')}.html")
    write_atomically(written, html)  # a browser reloading the page sees the old one or the new one
    if path is None and run.is_latest:
        point_latest(os.path.join(os.path.dirname(written), "latest.html"), written)
    return written
