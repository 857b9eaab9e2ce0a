"""The Evaluator reuses an unchanged baseline's metrics and still writes what TFX's Evaluator writes.

Real executors (TFX's and ours) run TFMA on a test dataset's eval split, with a candidate and a
baseline trained by run_fn. The run that blessed the baseline evaluated it alone (ours, as the
pipeline's first run does); then TFX's Evaluator and ours compare the candidate with it. Ours runs
with the baseline's model directory moved away: it cannot have read it.
"""
import os
import shutil

import pytest
import tensorflow_model_analysis as tfma
from tensorflow_model_analysis.proto.metrics_for_slice_pb2 import SliceKey
from tensorflow_model_analysis.writers import eval_config_writer
from tensorflow_model_analysis.writers import metrics_plots_and_validations_writer as tfma_writer
from tfx.components.evaluator import executor as tfx_executor
from tfx.types import standard_artifacts
from tfx.utils import proto_utils

from components.custom import evaluator
from pipeline.config import load_config
from pipeline.evaluation import make_eval_config
from pipeline.local_runner import local_beam_args
from tests.support.marks import uses
from tests.support.workspace import train

PACKAGE = "synth_binary"  # its gate: binary accuracy, an absolute change against the baseline


def _artifact(cls, uri, artifact_id=0, **properties):
    artifact = cls()
    artifact.uri, artifact.id = uri, artifact_id
    for name, value in properties.items():
        setattr(artifact, name, value)
    return artifact


def _outputs(directory):
    os.makedirs(directory)
    return {"evaluation": [_artifact(standard_artifacts.ModelEvaluation, os.path.join(directory, "evaluation"))],
            "blessing": [_artifact(standard_artifacts.ModelBlessing, os.path.join(directory, "blessing"))]}


def _properties(eval_config):
    return {"eval_config": proto_utils.proto_to_json(eval_config), "example_splits": "null", "code_fingerprint": "t"}


def _run(executor_class, inputs, eval_config, directory):
    outputs = _outputs(directory)
    context = executor_class.Context(beam_pipeline_args=local_beam_args(load_config()),
                                     tmp_dir=os.path.join(directory, "tmp"), unique_id="1")
    executor_class(context).Do(inputs, outputs, _properties(eval_config))
    return outputs


def _with_change_threshold(eval_config, absolute):
    """``eval_config`` with the gate's change threshold at ``absolute`` (the candidate's accuracy minus
    the baseline's must be at least that)."""
    config = tfma.EvalConfig()
    config.CopyFrom(eval_config)
    (gated,) = [m for spec in config.metrics_specs for m in spec.metrics if m.per_slice_thresholds]
    gated.per_slice_thresholds[0].threshold.change_threshold.absolute.value = absolute
    return config


@pytest.fixture(scope="module")
@uses("beam", "training")
def setup(workspace, tmp_path_factory):
    """Inputs of both evaluators, and the baseline's blessing from the run that evaluated it alone."""
    tmp = tmp_path_factory.mktemp("evaluator-reuse")
    user = workspace.user(PACKAGE)
    baseline_model = train(user, workspace.transformed(PACKAGE), str(tmp / "baseline"), train_steps=20)["root"]
    examples_dir = tmp / "examples" / "Split-eval"
    shutil.copytree(os.path.join(workspace.tfrecords(PACKAGE)["root"], "eval"), examples_dir)
    config_path = tmp / "config.yaml"
    config_path.write_text(f"pipeline_name: t\ndata_root: /data\nuser_package: {PACKAGE}\n")
    eval_config = make_eval_config(load_config(str(config_path), ["evaluation.max_degradation=1.0"]))
    candidate = _artifact(standard_artifacts.Model, workspace.trained(PACKAGE)["root"], 2)
    baseline = _artifact(standard_artifacts.Model, baseline_model, 1)
    examples = _artifact(standard_artifacts.Examples, str(tmp / "examples"), 1, split_names='["eval"]')
    first = _run(evaluator.Executor, {"examples": [examples], "model": [baseline]}, eval_config, str(tmp / "first"))
    return {"tmp": tmp, "eval_config": eval_config, "candidate": candidate, "baseline": baseline,
            "examples": examples, "blessing": first["blessing"][0]}


def _inputs(setup, **changes):
    return {"examples": [setup["examples"]], "model": [setup["candidate"]], "baseline_model": [setup["baseline"]],
            "baseline_model_blessing": [setup["blessing"]], **changes}


def _compare(setup, eval_config, name):
    """TFX's Evaluator, then ours with the baseline's model directory moved away."""
    inputs = _inputs(setup)
    tfx_out = _run(tfx_executor.Executor, {k: v for k, v in inputs.items() if k != "baseline_model_blessing"},
                   eval_config, str(setup["tmp"] / f"tfx-{name}"))
    model_dir = setup["baseline"].uri
    os.rename(model_dir, model_dir + ".away")
    try:
        ours_out = _run(evaluator.Executor, inputs, eval_config, str(setup["tmp"] / f"ours-{name}"))
    finally:
        os.rename(model_dir + ".away", model_dir)
    return tfx_out, ours_out


@pytest.fixture(scope="module")
def passing(setup):
    return _compare(setup, setup["eval_config"], "passing")


@pytest.fixture(scope="module")
def failing(setup, passing):
    """The gate requires more than the candidate's real gain over the baseline."""
    overall = _overall(passing[0])
    diff = next(v for k, v in overall.items() if k.is_diff and k.name == "binary_accuracy")
    return _compare(setup, _with_change_threshold(setup["eval_config"], diff + 0.001), "failing")


def _overall(outputs):
    from tensorflow_model_analysis.metrics import metric_types
    (record,) = [r for r in tfma_writer.load_and_deserialize_metrics(outputs["evaluation"][0].uri)
                 if not r.slice_key.single_slice_keys]
    return {metric_types.MetricKey.from_proto(kv.key): kv.value.double_value.value
            for kv in record.metric_keys_and_values}


def _metric_records(outputs):
    """Every metrics record as written (slices in any order; each record's keys in the file's order)."""
    return sorted(r.SerializeToString(deterministic=True)
                  for r in tfma_writer.load_and_deserialize_metrics(outputs["evaluation"][0].uri))


def _blessing(outputs):
    blessing = outputs["blessing"][0]
    return sorted(os.listdir(blessing.uri)), dict(blessing.mlmd_artifact.custom_properties)


def _assert_same_outputs(tfx_out, ours_out):
    tfx_uri, ours_uri = tfx_out["evaluation"][0].uri, ours_out["evaluation"][0].uri
    assert _metric_records(ours_out) == _metric_records(tfx_out)
    assert tfma.load_validation_result(ours_uri) == tfma.load_validation_result(tfx_uri)
    assert eval_config_writer.load_eval_run(ours_uri) == eval_config_writer.load_eval_run(tfx_uri)
    for read in (tfma_writer.load_and_deserialize_plots, tfma_writer.load_and_deserialize_attributions):
        assert sorted(map(str, read(ours_uri))) == sorted(map(str, read(tfx_uri)))
    (tfx_files, tfx_properties), (ours_files, ours_properties) = _blessing(tfx_out), _blessing(ours_out)
    assert ours_files == tfx_files
    assert {k: ours_properties[k] for k in tfx_properties} == tfx_properties


def test_the_baseline_s_metrics_are_reused_without_reading_its_model(setup, passing):
    _, ours = passing
    assert ours["blessing"][0].get_string_custom_property(evaluator.BASELINE_METRICS_FROM_PROPERTY) == \
        setup["blessing"].get_string_custom_property(evaluator.EVALUATION_URI_PROPERTY)


def test_a_passing_candidate_gets_tfx_s_metrics_validation_and_blessing(passing):
    tfx_out, ours = passing
    _assert_same_outputs(tfx_out, ours)
    assert os.listdir(ours["blessing"][0].uri) == ["BLESSED"]
    assert any(k.is_diff for k in _overall(ours)) and any(k.model_name == "baseline" for k in _overall(ours))


def test_a_candidate_failing_the_change_threshold_gets_tfx_s_metrics_validation_and_blessing(failing):
    tfx_out, ours = failing
    _assert_same_outputs(tfx_out, ours)
    assert os.listdir(ours["blessing"][0].uri) == ["NOT_BLESSED"]
    (failed,) = tfma.load_validation_result(ours["evaluation"][0].uri).metric_validations_per_slice
    assert failed.failures[0].metric_threshold.HasField("change_threshold")


def _reused(setup, eval_config=None, **changes):
    return evaluator.Executor()._reusable_baseline_metrics(
        _inputs(setup, **changes), _properties(eval_config or setup["eval_config"])) is not None


def test_other_thresholds_still_reuse_the_baseline_s_metrics(setup):
    assert _reused(setup, _with_change_threshold(setup["eval_config"], 0.5))


def test_a_changed_eval_config_evaluates_the_baseline_again(setup):
    config = tfma.EvalConfig()
    config.CopyFrom(setup["eval_config"])
    config.options.min_slice_size.value = 2
    assert not _reused(setup, config)


def test_other_examples_evaluate_the_baseline_again(setup):
    copy = setup["tmp"] / "examples-again"
    shutil.copytree(setup["examples"].uri, copy)
    assert not _reused(setup, examples=[_artifact(standard_artifacts.Examples, str(copy), 2, split_names='["eval"]')])


def test_a_baseline_blessed_by_tfx_s_own_evaluator_is_evaluated_again(setup):
    blessing = _artifact(standard_artifacts.ModelBlessing, setup["blessing"].uri)
    for name in ("current_model", "blessed"):
        blessing.mlmd_artifact.custom_properties[name].CopyFrom(setup["blessing"].mlmd_artifact.custom_properties[name])
    assert not _reused(setup, baseline_model_blessing=[blessing])


def test_a_baseline_whose_evaluation_was_cleaned_up_is_evaluated_again(setup):
    blessing = _artifact(standard_artifacts.ModelBlessing, setup["blessing"].uri)
    blessing.mlmd_artifact.custom_properties.MergeFrom(setup["blessing"].mlmd_artifact.custom_properties)
    blessing.set_string_custom_property(evaluator.EVALUATION_URI_PROPERTY, str(setup["tmp"] / "gone"))
    assert not _reused(setup, baseline_model_blessing=[blessing])


def test_this_run_s_candidate_metrics_serve_the_next_run_as_its_baseline(setup, passing):
    _, ours = passing
    next_run = evaluator.Executor()._reusable_baseline_metrics(
        _inputs(setup, model=[setup["baseline"]], baseline_model=[setup["candidate"]],
                baseline_model_blessing=ours["blessing"]), _properties(setup["eval_config"]))
    (overall,) = [m for key, m in next_run.by_slice.items() if not SliceKey.FromString(key).single_slice_keys]
    candidate = {k: v for k, v in _overall(ours).items() if k.model_name == "candidate" and not k.is_diff}
    assert overall == {k.make_baseline_key("baseline"): v for k, v in candidate.items()}


def test_on_kubeflow_the_evaluator_gets_the_baseline_s_blessing_from_the_compiled_resolver(tmp_path):
    import yaml

    from pipeline import kubeflow_runner
    from pipeline.config import CONFIG_DIR

    cfg = load_config(os.path.join(CONFIG_DIR, "kubeflow.yaml"),
                      overrides=[f"schema_path={load_config().resolved_schema_path}"])
    with open(kubeflow_runner.compile_pipeline(cfg, str(tmp_path / "pipeline.yaml"))) as f:
        spec = yaml.safe_load(f)
    blessing = spec["root"]["dag"]["tasks"]["evaluator"]["inputs"]["artifacts"]["baseline_model_blessing"]
    assert blessing["taskOutputArtifact"] == {"producerTask": "latest_blessed_model_resolver-model-blessing-resolver",
                                              "outputArtifactKey": "model_blessing"}
