"""`tfxp drift` against the training data of the sample's pushed model, found through MLMD from its version
(marked e2e: it needs the sample's run). Windows without the pipeline: tests/platform/test_drift.py."""
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import write_csv_slice
from tests.support.skew import SKEWED, skew_csv

pytestmark = pytest.mark.e2e


def _drift(cfg, config_path, *args):
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "drift", "--config", config_path, *args],
                          capture_output=True, text=True, cwd=os.path.dirname(config_path), timeout=600)


def test_the_eval_split_is_within_the_thresholds_of_the_served_model_s_training_data(sample_run):
    from serving import predict

    _, config_path, cfg, _ = sample_run
    result = _drift(cfg, config_path, "--data", os.path.join(cfg.resolved_data_root, "eval"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    version = os.path.basename(predict.latest_version(cfg.serving_model_dir))
    assert re.search(rf"skew against the training data of model version {version} \(\S+/StatisticsGen/statistics/"
                     rf"\d+, split train\): none of 17 features crossed", result.stdout), result.stdout


def test_a_skewed_copy_crosses_exit_3_and_the_run_report_shows_the_verdict(sample_run, tmp_path):
    from pipeline import report

    _, config_path, cfg, _ = sample_run
    skewed = skew_csv(write_csv_slice(tmp_path / "rows.csv", 600, start=2000), tmp_path / "skewed.csv")
    result = _drift(cfg, config_path, "--data", skewed)
    assert result.returncode == 3, result.stdout[-3000:] + result.stderr[-3000:]
    assert set(SKEWED) <= set(re.search(r"threshold: (.*) \(see the page\)", result.stderr).group(1).split(", "))
    page = re.search(r"wrote the page to (\S+)", result.stdout).group(1)
    assert page.startswith(os.path.join(cfg.resolved_output_root, "drift", cfg.pipeline_name))
    html = open(report.write_report(cfg, path=str(tmp_path / "report.html"))).read()
    assert re.search(r'<dd id="drift"><span class="badge failed">\d+ of 17 features crossed</span>', html)
    assert f'href="file://{page}"' in html
