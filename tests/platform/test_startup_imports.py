"""A local run imports what it uses: building the pipeline loads neither Kubeflow's SDK nor Google
Cloud's AI Platform client (``from tfx import v1`` would: 3-5 s of every `tfxp run`'s start-up)."""
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # a fresh interpreter imports TFX and builds the pipeline (about 10 s)

_BUILD = """
import sys
from pipeline import local_runner
from pipeline.config import load_config
local_runner.build(load_config(overrides=["output_root=" + sys.argv[1]]))
print(sorted(m for m in ("kfp", "google.cloud.aiplatform", "tfx.v1") if m in sys.modules))
"""


def test_building_the_local_pipeline_imports_neither_kubeflow_nor_google_cloud(tmp_path):
    result = subprocess.run([sys.executable, "-c", _BUILD, str(tmp_path / "runs")], capture_output=True, text=True,
                            timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[-1] == "[]"
