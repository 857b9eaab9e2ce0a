"""`tfxp report` on the sample's first run (the session's sample_run, tests/conftest.py): the page holds every
section, its numbers are the artifacts' and MLMD's, and it renders in a real browser.

Marked e2e: it needs the run. Later e2e tests add runs to the same pipeline, so the tests pick the
first run by its id; MLMD and the artifacts are read here directly, not through pipeline/report/.
"""
import argparse
import json
import os
import re

import pytest
import tensorflow_data_validation as tfdv
import tensorflow_model_analysis as tfma
from ml_metadata.proto import metadata_store_pb2 as mlmd

from pipeline import cli, report, run_summary
from tests.support.browser import check_page

pytestmark = pytest.mark.e2e

SECTIONS = ["run", "data", "training", "evaluation", "tflite", "push", "components"]
STATE_WORDS = {"COMPLETE": "executed", "CACHED": "cached", "FAILED": "failed"}


def _recorded_run(cfg, run_id):
    """({node: MLMD state name}, {(node, output key): uri}) of the run's components, straight from MLMD."""
    store = run_summary.open_store(cfg.resolved_metadata_path)
    in_run = {e.id for e in store.get_executions_by_context(
        store.get_context_by_type_and_name("pipeline_run", run_id).id)}
    resolvers = {t.id for t in store.get_execution_types() if t.name.endswith("Resolver")}
    states, outputs, prefix = {}, {}, cfg.pipeline_name + "."
    for node in store.get_contexts_by_type("node"):
        node_id = node.name[len(prefix):]
        for execution in store.get_executions_by_context(node.id):
            if node.name.startswith(prefix) and execution.id in in_run and execution.type_id not in resolvers:
                states[node_id] = mlmd.Execution.State.Name(execution.last_known_state)
                for event in store.get_events_by_execution_ids([execution.id]):
                    if event.type == mlmd.Event.OUTPUT:
                        artifact, = store.get_artifacts_by_id([event.artifact_id])
                        outputs[(node_id, event.path.steps[0].key)] = artifact.uri
    return states, outputs


@pytest.fixture(scope="module")
def first_report(sample_run, tmp_path_factory):
    """(config, run id, page path, page) of the report of the session's first run."""
    _, _, cfg, _ = sample_run
    run_id = run_summary.pipeline_runs(run_summary.open_store(cfg.resolved_metadata_path), cfg.pipeline_name)[0].name
    path = report.write_report(cfg, run_id, str(tmp_path_factory.mktemp("report") / "first.html"))
    with open(path, encoding="utf-8") as f:
        return cfg, run_id, path, f.read()


def test_the_report_of_a_complete_run_holds_every_section_and_no_section_is_missing_its_content(first_report):
    _, run_id, _, page = first_report
    assert [s for s in SECTIONS if f'id="{s}"' not in page] == []
    assert run_id in page and re.search(r"all \d+ components complete", page)
    assert re.findall(r'<p class="note">(.*?)</p>', page) == []  # notes say a section could not be filled


def test_rows_per_split_are_the_statistics_num_examples(first_report):
    cfg, run_id, _, page = first_report
    statistics = _recorded_run(cfg, run_id)[1][("StatisticsGen", "statistics")]
    for split in ("train", "eval"):
        stats = tfdv.load_stats_binary(os.path.join(statistics, f"Split-{split}", "FeatureStats.pb"))
        rows = stats.datasets[0].num_examples
        assert re.search(rf'data-split="{split}">([\d,]+)<', page).group(1) == f"{rows:,}"


def test_the_candidates_accuracy_shown_is_tfmas_metric_in_the_evaluation_artifact(first_report):
    cfg, run_id, _, page = first_report
    evaluation = _recorded_run(cfg, run_id)[1][("evaluator", "evaluation")]
    with open(os.path.join(evaluation, "eval_config.json")) as f:
        specs = json.load(f)["evalConfig"]["modelSpecs"]
    candidate = next(spec.get("name") for spec in specs if not spec.get("isBaseline"))
    overall = dict(tfma.load_eval_result(evaluation, model_name=candidate).slicing_metrics)[()][""][""]
    shown = re.search(r'data-metric="binary_accuracy"><td>binary_accuracy</td>'
                      r'<td class="num candidate">([\d.]+)<', page)
    assert shown.group(1) == f"{overall['binary_accuracy']['doubleValue']:.4f}"


def test_the_components_listed_are_the_runs_executions_in_mlmd(first_report):
    cfg, run_id, _, page = first_report
    states = _recorded_run(cfg, run_id)[0]
    listed = dict(re.findall(r'data-component="([^"]+)" data-state="([^"]+)"', page))
    assert listed == {node: STATE_WORDS[state] for node, state in states.items()}


def test_the_tflite_table_has_a_row_per_variant_with_its_verdict(first_report):
    cfg, run_id, _, page = first_report
    with open(os.path.join(_recorded_run(cfg, run_id)[1][("tflite_evaluator", "blessing")], "report.json")) as f:
        variants = json.load(f)["variants"]
    for name, variant in variants.items():
        row = re.search(rf'<tr data-variant="{name}">(.*?)</tr>', page, flags=re.DOTALL).group(1)
        assert f"{variant['metrics']['accuracy']:.4f}" in row and ("yes" if variant["blessed"] else "no") in row


@pytest.mark.browser
def test_the_report_renders_in_a_headless_browser_with_no_errors_and_every_image_decoding(first_report):
    check = check_page(first_report[2])
    assert (check.errors, check.console, check.broken_images) == ([], [], [])
    assert len(check.images) >= 4  # feature histograms, training curves, slices, timeline


def test_tfxp_report_writes_the_newest_runs_page_under_reports_and_points_latest_html_at_it(sample_run, capsys):
    _, config_path, cfg, _ = sample_run
    newest = run_summary.pipeline_runs(run_summary.open_store(cfg.resolved_metadata_path), cfg.pipeline_name)[-1].name
    assert cli.cmd_report(argparse.Namespace(run=None, output=None, config=config_path, overrides=[])) == 0
    path = os.path.join(cfg.resolved_output_root, "reports", cfg.pipeline_name, f"{newest}.html")
    assert capsys.readouterr().out.strip() == f"wrote the report of run {newest} to {path} (file://{path})"
    assert os.path.realpath(os.path.join(os.path.dirname(path), "latest.html")) == os.path.realpath(path)


def test_tfxp_run_writes_its_runs_report_and_prints_where(sample_run):
    _, _, cfg, result = sample_run
    [line] = [line for line in result.stdout.splitlines() if line.startswith("Run report: ")]
    path = line.split("Run report: ")[1].split(" (open file://")[0]
    run_id = run_summary.pipeline_runs(run_summary.open_store(cfg.resolved_metadata_path), cfg.pipeline_name)[0].name
    assert os.path.dirname(path) == report.default_report_dir(cfg) and os.path.exists(path)
    assert run_id.replace(os.sep, "_") in os.path.basename(path)
