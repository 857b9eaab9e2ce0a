"""The shipped notebook (notebooks/dev_loop.ipynb) runs top to bottom in a real Jupyter kernel (e2e: minutes).

nbclient executes it with ipykernel, as `jupyter nbconvert --execute` would, on a 1,000-row slice with few
training steps (the notebook's TFXP_NOTEBOOK_* parameters) in a temporary folder and on free ports.
"""
import os
import re

import nbformat
import pytest
from nbclient import NotebookClient

from pipeline.config import PROJECT_ROOT
from bench.model_server import free_port

pytestmark = pytest.mark.e2e

NOTEBOOK = os.path.join(PROJECT_ROOT, "notebooks", "dev_loop.ipynb")


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("notebook")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    parameters = {"TFXP_NOTEBOOK_DIR": str(tmp), "TFXP_NOTEBOOK_ROWS": "1000", "TFXP_NOTEBOOK_TRAIN_STEPS": "60",
                  "TFXP_NOTEBOOK_REST_PORT": str(free_port()), "TFXP_NOTEBOOK_GRPC_PORT": str(free_port())}
    saved = {k: os.environ.get(k) for k in parameters}
    os.environ.update(parameters)  # the kernel inherits them
    try:
        NotebookClient(notebook, timeout=1200, kernel_name="python3",
                       resources={"metadata": {"path": os.path.dirname(NOTEBOOK)}}).execute()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return notebook, tmp


def _outputs(notebook):
    return ["".join(o.get("text", "") for o in cell.get("outputs", [])) for cell in notebook.cells
            if cell.cell_type == "code"]


def test_the_walkthrough_serves_the_sample_then_its_edit_and_writes_nothing_into_the_project(executed):
    notebook, tmp = executed
    outputs = "\n".join(_outputs(notebook))
    first, second = re.search(r"iteration 1 \(start\).*?done in", outputs, re.S), \
        re.search(r"iteration 2 \(model.py changed\).*?done in", outputs, re.S)
    assert first and second, outputs[-3000:]
    assert re.search(r"served: version \d+, [\d.]+ s after the start: P\(big_tipper\) = \d\.\d{3}", first.group(0))
    cached = next(line for line in second.group(0).splitlines() if line.strip().startswith("cached"))
    assert "ImportExampleGen" in cached and "Transform" in cached, second.group(0)
    assert not os.path.exists(os.path.join(PROJECT_ROOT, "runs", "notebook", "code"))
    assert os.path.isdir(tmp / "code" / "my_taxi")


def test_the_served_model_answers_rest_and_the_history_lists_both_iterations(executed):
    notebook, _ = executed
    outputs = _outputs(notebook)
    rest = next(o for o in outputs if o.startswith("200 "))
    assert "'predictions'" in rest and "'state': 'AVAILABLE'" in rest
    history = next(o for o in outputs if o.startswith("run "))
    assert "(first run)" in history and "model.py" in history


def test_an_iteration_shows_its_summary_only_the_libraries_logs_go_to_the_run_log(executed):
    notebook, _ = executed
    cells = [cell for cell in notebook.cells if cell.cell_type == "code" and ".iterate(" in cell.source]
    assert len(cells) == 2
    for cell in cells:
        streams = {o.get("name") for o in cell.get("outputs", []) if o.get("output_type") == "stream"}
        text = "".join(o.get("text", "") for o in cell.get("outputs", []))
        assert streams == {"stdout"} and "INFO" not in text and "WARNING" not in text, text[-2000:]
