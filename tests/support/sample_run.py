"""`tfxp run` on a slice of the shipped sample, in a subprocess, as a user would run it."""
import os
import subprocess
import sys

import yaml

from pipeline.config import load_config
from tests.support.marks import require


def write_config(tmp_path, csv_path, name="e2e", **extra):
    config = {
        "pipeline_name": name, "source_csv": csv_path, "data_root": str(tmp_path / "runs" / "data"), "shards": 2,
        "output_root": str(tmp_path / "runs"), "schema_path": load_config().resolved_schema_path,
        "training": {"train_steps": 60, "eval_steps": 10, "batch_size": 32},
        "evaluation": {"threshold": 0.5, "max_degradation": 0.5}, **extra,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def tfxp_run(config_path, pythonpath=None):
    require("e2e", "runs the whole pipeline (tfxp run)")
    # cwd: not the project root, which `python -m` would put ahead of PYTHONPATH.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "pipeline.cli", "run", "--config", config_path],
                          capture_output=True, text=True, env=env, cwd=os.path.dirname(config_path), timeout=1200)
