"""`tfxp init` on a CSV of each task, then `tfxp run` on what it wrote, with no edit (marked e2e: minutes).

The synthetic CSV of the binary and the regression test dataset (tests/support/synthetic.py; the multi-class one
goes through `tfxp init` and `tfxp dev` in tests/platform/test_dev_multiclass.py)
stands for a data scientist's own data. `tfxp init` writes a new package into a temporary folder,
put on PYTHONPATH as its output says, with the data under a temporary output root; `tfxp run` on
the generated config, with fewer training steps, must exit 0 having pushed a model.
"""
import glob
import os
import subprocess
import sys

import pytest

from components.core.user_code import load_user_code
from tests.conftest import TASK_PACKAGES
from tests.support import synthetic

pytestmark = pytest.mark.e2e

ROWS = 500


def _tfxp(args, env):
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], capture_output=True, text=True, env=env,
                          timeout=1200)


def _tail(result):
    return result.stdout[-3000:] + result.stderr[-5000:]


# The multi-class dataset's package goes through `tfxp init` and then `tfxp dev` in tests/platform/test_dev_multiclass.py.
@pytest.fixture(scope="module", params=[p for p in TASK_PACKAGES if p != "synth_multiclass"])
def initialized_run(request, tmp_path_factory):
    """(package name, output root, the init's and the run's CompletedProcess), once per task."""
    dataset = request.param
    tmp = tmp_path_factory.mktemp(dataset)
    csv_path = synthetic.write_csv(tmp / "data.csv", load_user_code(dataset), ROWS)
    name, parent, output_root = f"my_{dataset}", tmp / "packages", tmp / "runs"
    parent.mkdir()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join([str(parent)] + [p for p in os.environ.get("PYTHONPATH", "").split(
                   os.pathsep) if p]))
    init = _tfxp(["init", name, "--csv", csv_path, "--label", load_user_code(dataset).task.label,
                  "--dir", str(parent), "--output-root", str(output_root)], env)
    assert init.returncode == 0, _tail(init)
    run = _tfxp(["run", "--config", str(parent / name / "config.yaml"),
                 "--set", "training.train_steps=40", "--set", "training.eval_steps=5"], env)
    return name, output_root, init, run


def test_init_prints_the_command_that_starts_the_loop_on_the_new_package(initialized_run):
    name, _, init, _ = initialized_run
    assert "tfxp dev --config " in init.stdout and f"{name}/config.yaml" in init.stdout


def test_the_generated_package_trains_and_pushes_a_model_with_no_edit(initialized_run):
    name, output_root, _, run = initialized_run
    assert run.returncode == 0, _tail(run)
    assert glob.glob(str(output_root / "serving_model" / name / "*" / "saved_model.pb")), run.stdout[-3000:]
