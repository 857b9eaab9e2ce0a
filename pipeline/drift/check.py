"""`tfxp drift`: is the data a model now sees still the data it was trained on?

    result = check(cfg, data="runs/request_logs/chicago_taxi/requests")     # skew against the training data
    result = check(cfg, data="logs/week2", reference="logs/week1")           # drift between two windows

Reads the window (pipeline/drift/inputs.py), its reference (the training statistics of the served model's
run, found through MLMD: pipeline/drift/reference.py; or a second window), compares them with the
schema's comparators (pipeline/drift/compare.py), writes one HTML page and the verdict the run report
shows (pipeline/drift/verdict.py). DriftFoundError (exit 3) when a threshold is crossed.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import List, Optional

from pipeline.drift import compare, inputs, reference as references, verdict
from tfxp.errors import TfxpError
from tfxp.files import write_atomically

log = logging.getLogger(__name__)

FOUND_EXIT_CODE = 3


class DriftFoundError(RuntimeError, TfxpError):
    """A skew or drift threshold was crossed (the page says which features)."""
    exit_code = FOUND_EXIT_CODE
    outcome = "drift found"


@dataclass
class DriftResult:
    page: str
    skew: bool                                   # against the training data (else: between two windows)
    current: inputs.Window
    reference_text: str
    rows: List[compare.FeatureDrift]
    other_anomalies: List[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def crossed(self) -> List[compare.FeatureDrift]:
        return [row for row in self.rows if row.crossed]

    def summary(self) -> str:
        what = "skew against" if self.skew else "drift from"
        if self.crossed:
            names = ", ".join(f"{r.feature} ({r.value:.3g} > {r.threshold:g})" for r in self.crossed)
            return f"{what} {self.reference_text}: {len(self.crossed)} of {len(self.rows)} features crossed: {names}"
        return f"{what} {self.reference_text}: none of {len(self.rows)} features crossed its threshold"


def _load_schema(cfg):
    import tensorflow_data_validation as tfdv

    path = cfg.resolved_schema_path
    if not path or not os.path.exists(path):
        raise compare.DriftConfigError(f"schema_path: {path or 'not set'}: the drift check needs the schema file "
                                       f"(its SERVING environment and thresholds); `tfxp schema` writes one")
    return tfdv.load_schema_text(path), path


def _pushed_versions(cfg) -> List[int]:
    from serving import predict

    return [int(os.path.basename(p.rstrip("/"))) for p in predict.model_versions(cfg.serving_model_dir)]


def check(cfg, data: str, reference: Optional[str] = None, page: Optional[str] = None,
          version: Optional[int] = None) -> DriftResult:
    """Compares the examples at ``data`` with ``reference`` (a second window; None: the training data of the
    served model, ``version`` or the one the logs name) and writes the page; returns the result (the
    caller decides the exit: DriftFoundError when ``result.crossed``)."""
    start = time.perf_counter()
    schema, schema_path = _load_schema(cfg)
    features = cfg.user_code.features
    skew = reference is None
    ready, origins = compare.thresholded_schema(schema, cfg.drift.thresholds, schema_path, skew)
    current = inputs.read_examples(data, features, cfg.drift.max_examples)
    log.info("read %s", current.describe())
    compare.unknown_features(current.examples, ready, current.files[0])
    current_stats = compare.window_statistics(current.examples, ready)
    if skew:
        chosen = version if version is not None else references.served_version(current.versions, _pushed_versions(cfg))
        if chosen is None:
            raise references.ReferenceNotFoundError(f"{cfg.serving_model_dir}: no pushed model, so no training data "
                                                    f"to compare with (run `tfxp run`, or give --reference)")
        found = references.training_reference(cfg.resolved_metadata_path, cfg.pipeline_name, chosen)
        reference_stats, reference_text = found.statistics, found.describe()
    else:
        window = inputs.read_examples(reference, features, cfg.drift.max_examples)
        compare.unknown_features(window.examples, ready, window.files[0])
        reference_stats, reference_text = compare.window_statistics(window.examples, ready), window.describe()
    rows, others, _ = compare.compare(current_stats, reference_stats, ready, skew)
    for row in rows:
        row.threshold_from = origins[row.feature]
    path = page or os.path.join(verdict.drift_dir(cfg), time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + ".html")
    result = DriftResult(path, skew, current, reference_text, rows, others, time.perf_counter() - start)
    from pipeline.drift.page import render_page

    write_atomically(path, render_page(cfg, result, current_stats, reference_stats))
    verdict.write_latest(cfg, {"checked_at": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                               "page": os.path.abspath(path), "summary": result.summary(),
                               "crossed": [r.feature for r in result.crossed], "compared": len(rows),
                               "examples": len(current.examples), "data": data, "reference": reference_text})
    return result
