"""TFX's Evaluator that does not evaluate an unchanged baseline on unchanged eval data again.

On a rerun after a model edit, TFX's Evaluator has TFMA run both models over the eval split: the
new candidate and the baseline (the last blessed model), whose metrics on that split TFMA already
computed when that model was itself the candidate. Here the executor (TFX's, subclassed) reads those
metrics back instead, has TFMA evaluate the candidate alone, and then does with TFMA's own code what
TFMA would have done after computing both: the diff metrics (``_AddDerivedCrossSliceAndDiffMetrics``),
the validation (``metrics_validator.validate_metrics`` with the full eval config) and the writing
(``tfma.default_writers``: eval_config.json with both models, metrics with the candidate's, the
baseline's and the diff keys, plots, attributions, validations). The blessing is TFX's. Its outputs
are what TFX's Evaluator writes for the same inputs (tests/platform/test_evaluator_reuse.py).

Where the stored metrics live: in the ModelEvaluation of the run that evaluated the baseline as its
candidate. Its blessing, which the baseline resolver hands over with the model (both TFX's
LatestBlessedModelStrategy and ours resolve the pair; so does Kubeflow's compiled resolver), carries
two more custom properties written by this executor: ``evaluation_uri`` (that ModelEvaluation) and
``evaluation_key``. No side store, no MLMD query from the executor (there is none on Kubeflow), and
only artifact paths, read with TFMA's readers (tf.io.gfile: gs:// works).

The key: what a model's metrics depend on besides the model, hashed: the eval config as it applies
to that model (its ModelSpec without name, the slicing specs, the metrics specs that apply to it,
the options) without thresholds, the examples artifacts (URI and splits: an artifact is never
rewritten), the example splits, the schema artifact and the TFMA version. Metrics are reused only
when the baseline's blessing names the baseline model itself and its key equals the key the
baseline would have here; a changed eval config (other than thresholds), new examples or another
TFMA evaluates both models as TFX does. So do a baseline blessed by TFX's own Evaluator (no
properties), confidence intervals, cross-slicing, user modules (custom extractors or model loaders)
and stored metrics that are not plain numbers or that have plots: what this executor cannot restore
exactly, it does not restore.

The gate's threshold as a run parameter: the eval config is a proto, which cannot hold a Kubeflow run
parameter, so a float execution property, ``gate_threshold``, replaces the bound of the eval config's one
value threshold before anything reads it (``with_gate_threshold``). Unset (local runs), the eval config's own.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Dict, List, Optional

import apache_beam as beam
import numpy as np
import tensorflow as tf
import tensorflow_model_analysis as tfma
from absl import logging
from tensorflow_model_analysis.evaluators import metrics_validator
# TFMA's own diff step (private: the evaluation key holds TFMA's version, and the tests compare with TFMA).
from tensorflow_model_analysis.evaluators.metrics_plots_and_validations_evaluator import (
    _AddDerivedCrossSliceAndDiffMetrics)
from tensorflow_model_analysis.metrics import metric_types
from tensorflow_model_analysis.slicer import slicer_lib
from tensorflow_model_analysis.utils import config_util, model_util
from tensorflow_model_analysis.writers import eval_config_writer
from tensorflow_model_analysis.writers import metrics_plots_and_validations_writer as tfma_writer
from tfx import types
from tfx.components.evaluator import constants
from tfx.components.evaluator import executor as tfx_executor
from tfx.components.util import tfxio_utils
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import artifact_utils, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import io_utils, json_utils, path_utils, proto_utils
from tfx_bsl.tfxio import tensor_adapter

from google.protobuf import json_format, message

BASELINE_MODEL_BLESSING_KEY = "baseline_model_blessing"
# Custom properties of the blessing this executor writes.
EVALUATION_URI_PROPERTY = "evaluation_uri"  # the ModelEvaluation holding the current model's metrics
EVALUATION_KEY_PROPERTY = "evaluation_key"  # what those metrics depend on besides the model
BASELINE_METRICS_FROM_PROPERTY = "baseline_metrics_from"  # set when the baseline's metrics were reused
# A float execution property (a run parameter on Kubeflow: the proto eval_config cannot hold one) that
# replaces the bound of the eval config's one value threshold: the gate's.
GATE_THRESHOLD_KEY = "gate_threshold"

_TELEMETRY_DESCRIPTORS = ["Evaluator"]


def _metrics_specs_of(eval_config: tfma.EvalConfig, model_name: str) -> List[tfma.MetricsSpec]:
    return [spec for spec in eval_config.metrics_specs if not spec.model_names or model_name in spec.model_names]


def _without_thresholds(spec: tfma.MetricsSpec) -> tfma.MetricsSpec:
    result = tfma.MetricsSpec()
    result.CopyFrom(spec)
    for field in ("model_names", "thresholds", "per_slice_thresholds", "cross_slice_thresholds"):
        result.ClearField(field)
    for metric in result.metrics:
        for field in ("threshold", "per_slice_thresholds", "cross_slice_thresholds"):
            metric.ClearField(field)
    return result


def evaluation_key(eval_config: tfma.EvalConfig, model_spec: tfma.ModelSpec, examples: List[types.Artifact],
                   example_splits: List[str], schema_uri: Optional[str]) -> str:
    """What the metrics of the model that ``model_spec`` describes depend on, besides the model.

    ``eval_config`` is the config TFMA ran (defaults applied); thresholds, model names and the
    baseline's presence are left out: they change the verdict, not the metrics.
    """
    config = tfma.EvalConfig()
    config.CopyFrom(eval_config)
    del config.model_specs[:]
    spec = config.model_specs.add()
    spec.CopyFrom(model_spec)
    spec.ClearField("name")
    spec.ClearField("is_baseline")
    del config.metrics_specs[:]
    config.metrics_specs.extend(_without_thresholds(s) for s in _metrics_specs_of(eval_config, model_spec.name))
    payload = {
        "eval_config": json_format.MessageToJson(config, sort_keys=True),
        "examples": [[a.uri, a.split_names] for a in examples],
        "example_splits": example_splits,
        "schema": schema_uri,
        "tfma": tfma.version.VERSION,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def with_gate_threshold(eval_config: tfma.EvalConfig, bound: float) -> tfma.EvalConfig:
    """A copy of ``eval_config`` whose one value threshold (lower or upper bound) is ``bound``."""
    config = tfma.EvalConfig()
    config.CopyFrom(eval_config)
    thresholds = []
    for spec in config.metrics_specs:
        for metric in spec.metrics:
            thresholds += [metric.threshold] + [t.threshold for t in metric.per_slice_thresholds]
        thresholds += list(spec.thresholds.values())
        thresholds += [t.threshold for per_slice in spec.per_slice_thresholds.values() for t in per_slice.thresholds]
    values = [t.value_threshold for t in thresholds if t.HasField("value_threshold")]
    sides = [side for value in values for side in ("lower_bound", "upper_bound") if value.HasField(side)]
    if len(sides) != 1:
        raise ValueError(f"{GATE_THRESHOLD_KEY}: the eval config must have exactly one value threshold with one "
                         f"bound for the run's threshold to replace, it has {len(sides)}")
    getattr(values[0], sides[0]).value = float(bound)
    return config


class StoredMetrics:
    """A model's metrics read back from an evaluation, keyed for the baseline:
    ``by_slice[serialized SliceKey] = {MetricKey(model_name=baseline): float}``."""

    def __init__(self, evaluation_uri: str, by_slice: Dict[bytes, Dict[metric_types.MetricKey, float]]):
        self.evaluation_uri = evaluation_uri
        self.by_slice = by_slice


def _has_plots_or_attributions(evaluation_uri: str) -> bool:
    return (any(r.plot_keys_and_values or r.HasField("plot_data") or r.plots
                for r in tfma_writer.load_and_deserialize_plots(evaluation_uri))
            or any(r.attributions_keys_and_values
                   for r in tfma_writer.load_and_deserialize_attributions(evaluation_uri)))


def _read_metrics(evaluation_uri: str, model_name: str, baseline_name: str):
    """{serialized SliceKey: {baseline's MetricKey: float}} of ``model_name`` in the evaluation, or (None, why not)."""
    by_slice = {}
    for record in tfma_writer.load_and_deserialize_metrics(evaluation_uri):
        if record.WhichOneof("slicing_spec_oneof") != "slice_key" or record.metrics:
            return None, "it has cross-slice or legacy metrics"
        metrics = {}
        for item in record.metric_keys_and_values:
            key = metric_types.MetricKey.from_proto(item.key)
            if key.model_name != model_name or key.is_diff:
                continue
            if item.value.WhichOneof("type") != "double_value" or item.HasField("confidence_interval"):
                return None, f"its {item.key.name} is not a plain number"
            metrics[key.make_baseline_key(baseline_name)] = item.value.double_value.value
        by_slice[record.slice_key.SerializeToString(deterministic=True)] = metrics
    return (by_slice, "") if by_slice else (None, "it has no metrics")


def read_stored_metrics(evaluation_uri: str, model_path: str, baseline_name: str):
    """(StoredMetrics, "") for the model at ``model_path`` as evaluated in ``evaluation_uri``, or
    (None, why not) when they cannot be restored exactly (or are gone: artifacts may be cleaned up)."""
    try:
        stored_config, _, _, model_locations = eval_config_writer.load_eval_run(evaluation_uri)
        if stored_config is None:
            return None, f"no eval_config.json in {evaluation_uri}"
        specs = model_util.get_non_baseline_model_specs(stored_config)
        if len(specs) != 1 or model_locations.get(specs[0].name) != model_path:
            return None, f"{evaluation_uri} is not an evaluation of {model_path} as the candidate"
        if _has_plots_or_attributions(evaluation_uri):
            return None, f"{evaluation_uri} has plots or attributions"
        by_slice, why_not = _read_metrics(evaluation_uri, specs[0].name, baseline_name)
    except (OSError, tf.errors.OpError, message.DecodeError) as e:
        return None, f"{evaluation_uri} cannot be read ({e})"
    if by_slice is None:
        return None, f"{evaluation_uri}: {why_not}"
    return StoredMetrics(evaluation_uri, by_slice), ""


def _renamed(sliced, old_name: str, new_name: str):
    """The single-model run names its model ""; the two-model run names it "candidate"."""
    slice_key, values = sliced
    return slice_key, {k._replace(model_name=new_name) if k.model_name == old_name else k: v
                       for k, v in values.items()}


def _with_stored_baseline(sliced, stored: StoredMetrics, candidate_name: str, baseline_model_name: str):
    slice_key, metrics = sliced
    serialized = slicer_lib.serialize_slice_key(slice_key).SerializeToString(deterministic=True)
    if serialized not in stored.by_slice:
        raise ValueError(f"the baseline's metrics in {stored.evaluation_uri} have no slice {slice_key}: "
                         "the evaluation key should have prevented their reuse")
    baseline = dict(stored.by_slice[serialized])
    result = {}
    # TFMA's writer keeps the dict's order (MetricKey's __lt__ orders almost nothing), and a metric's
    # computation yields the candidate's key, then the baseline's: the same order here.
    for key, value in metrics.items():
        result[key] = value
        twin = key._replace(model_name=baseline_model_name) if key.model_name == candidate_name else None
        if twin in baseline:
            # The same computation gave the baseline a value of the candidate's type (the diff is
            # computed on it); the stored double holds that value exactly.
            stored_value = baseline.pop(twin)
            result[twin] = type(value)(stored_value) if isinstance(value, (int, float, np.number)) else stored_value
    result.update(baseline)
    return slice_key, result


class Executor(tfx_executor.Executor):
    """TFX's Evaluator executor; with reusable baseline metrics, TFMA evaluates the candidate only."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        exec_properties = self._with_run_threshold(exec_properties)
        stored = self._reusable_baseline_metrics(input_dict, exec_properties)
        if stored is None:
            super().Do(input_dict, output_dict, exec_properties)
        else:
            self._evaluate_candidate_beside_stored_baseline(input_dict, output_dict, exec_properties, stored)
        self._record_evaluation(input_dict, output_dict, exec_properties, stored)

    # -- what the run's inputs say ----------------------------------------------------------------

    @staticmethod
    def _with_run_threshold(exec_properties: Dict[str, Any]) -> Dict[str, Any]:
        """The execution properties with ``gate_threshold``, when set, written into the eval config."""
        bound = exec_properties.get(GATE_THRESHOLD_KEY)
        if bound is None or not exec_properties.get(standard_component_specs.EVAL_CONFIG_KEY):
            return exec_properties
        config = tfma.EvalConfig()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.EVAL_CONFIG_KEY], config)
        logging.info("The gate's value threshold for this run: %s (%s).", bound, GATE_THRESHOLD_KEY)
        return {**exec_properties,
                standard_component_specs.EVAL_CONFIG_KEY: proto_utils.proto_to_json(with_gate_threshold(config, bound))}

    @staticmethod
    def _eval_config(input_dict, exec_properties) -> tfma.EvalConfig:
        """The eval config as TFX's executor prepares it (defaults for the baseline's presence)."""
        config = tfma.EvalConfig()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.EVAL_CONFIG_KEY], config)
        config = tfma.utils.update_eval_config_with_defaults(
            config, has_baseline=bool(input_dict.get(standard_component_specs.BASELINE_MODEL_KEY)), rubber_stamp=True)
        tfma.utils.verify_eval_config(config)
        return config

    @staticmethod
    def _example_splits(exec_properties) -> List[str]:
        return json_utils.loads(exec_properties.get(standard_component_specs.EXAMPLE_SPLITS_KEY, "null")) or ["eval"]

    @classmethod
    def _key(cls, input_dict, exec_properties, eval_config, model_spec) -> str:
        schema = input_dict.get(standard_component_specs.SCHEMA_KEY)
        return evaluation_key(eval_config, model_spec, input_dict[standard_component_specs.EXAMPLES_KEY],
                              cls._example_splits(exec_properties), schema[0].uri if schema else None)

    @staticmethod
    def _model_path(artifacts) -> str:
        model = artifact_utils.get_single_instance(artifacts)
        return path_utils.serving_model_path(model.uri, path_utils.is_old_model_artifact(model))

    def _reusable_baseline_metrics(self, input_dict, exec_properties) -> Optional[StoredMetrics]:
        """The baseline's stored metrics when they are what TFMA would compute for it here, else None."""
        baseline = input_dict.get(standard_component_specs.BASELINE_MODEL_KEY)
        blessing = input_dict.get(BASELINE_MODEL_BLESSING_KEY)
        why_not = None
        if not baseline or not exec_properties.get(standard_component_specs.EVAL_CONFIG_KEY):
            return None
        eval_config = self._eval_config(input_dict, exec_properties)
        baseline_spec = model_util.get_baseline_model_spec(eval_config)
        if not blessing:
            why_not = "the baseline model came without its blessing"
        elif (blessing[0].get_string_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY)
              != baseline[0].uri):
            why_not = "the baseline's blessing is another model's"
        elif not blessing[0].get_string_custom_property(EVALUATION_URI_PROPERTY):
            why_not = "the baseline's blessing does not say where its evaluation is"
        elif any(exec_properties.get(k) for k in (standard_component_specs.MODULE_FILE_KEY,
                                                  standard_component_specs.MODULE_PATH_KEY)):
            why_not = "a user module may change how models are loaded or evaluated"
        elif (eval_config.options.compute_confidence_intervals.value or eval_config.cross_slicing_specs
              or tfma.utils.get_model_type(baseline_spec) == tfma.TFMA_EVAL):
            why_not = "confidence intervals, cross-slices and EvalSavedModels are always evaluated anew"
        elif (blessing[0].get_string_custom_property(EVALUATION_KEY_PROPERTY)
              != self._key(input_dict, exec_properties, eval_config, baseline_spec)):
            why_not = "the eval config (besides thresholds), the examples or TFMA changed since"
        if why_not is None:
            stored, why_not = read_stored_metrics(blessing[0].get_string_custom_property(EVALUATION_URI_PROPERTY),
                                                  self._model_path(baseline), baseline_spec.name)
            if stored is not None:
                logging.info("Reusing the baseline's metrics from %s: TFMA evaluates the candidate only.",
                             stored.evaluation_uri)
                return stored
        logging.info("Evaluating the baseline again: %s.", why_not)
        return None

    # -- the evaluation -------------------------------------------------------------------------------

    def _read_examples(self, pipeline, input_dict, exec_properties):
        """The eval examples as Arrow record batches, as TFX's executor reads them (its batched path)."""
        schema = None
        if input_dict.get(standard_component_specs.SCHEMA_KEY):
            schema = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(
                artifact_utils.get_single_uri(input_dict[standard_component_specs.SCHEMA_KEY])))
        examples = input_dict[standard_component_specs.EXAMPLES_KEY]
        tfxio_factory = tfxio_utils.get_tfxio_factory_from_artifact(
            examples=examples, telemetry_descriptors=_TELEMETRY_DESCRIPTORS, schema=schema,
            raw_record_column_name=tfma.constants.ARROW_INPUT_COLUMN)
        batches, tfxio = [], None
        for split in self._example_splits(exec_properties):
            for index, split_uri in enumerate(artifact_utils.get_split_uris(examples, split)):
                tfxio = tfxio_factory(io_utils.all_files_pattern(split_uri))
                batches.append(pipeline | f"ReadFromTFRecordToArrow[{split}][{index}]" >> tfxio.BeamSource())
        adapter_config = None
        if schema is not None:
            adapter_config = tensor_adapter.TensorAdapterConfig(
                arrow_schema=tfxio.ArrowSchema(), tensor_representations=tfxio.TensorRepresentations())
        return batches | "FlattenExamples" >> beam.Flatten(), adapter_config

    def _evaluate_candidate_beside_stored_baseline(self, input_dict, output_dict, exec_properties,
                                                   stored: StoredMetrics) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        output_uri = artifact_utils.get_single_uri(output_dict[constants.EVALUATION_KEY])
        eval_config = self._eval_config(input_dict, exec_properties)
        (candidate_spec,) = model_util.get_non_baseline_model_specs(eval_config)
        baseline_spec = model_util.get_baseline_model_spec(eval_config)
        # The candidate alone, exactly as a first run evaluates it (its model is named "" there).
        single_config = config_util.update_eval_config_with_defaults(eval_config, has_baseline=False, rubber_stamp=True)
        candidate_path = self._model_path(input_dict[standard_component_specs.MODEL_KEY])
        candidate = tfma.default_eval_shared_model(eval_saved_model_path=candidate_path, model_name="",
                                                   eval_config=single_config)
        # Only the baseline's name and path, for eval_config.json: it is never loaded.
        baseline = tfma.types.EvalSharedModel(model_path=self._model_path(
            input_dict[standard_component_specs.BASELINE_MODEL_KEY]), model_name=baseline_spec.name, is_baseline=True)
        logging.info("Evaluating %s as %s; the baseline's metrics from %s.", candidate_path, candidate_spec.name,
                     stored.evaluation_uri)
        with self._make_beam_pipeline() as pipeline:
            examples, adapter_config = self._read_examples(pipeline, input_dict, exec_properties)
            evaluation = (
                examples
                | "BatchedInputsToExtracts" >> tfma.BatchedInputsToExtracts()
                | "ExtractAndEvaluate" >> tfma.ExtractAndEvaluate(
                    extractors=tfma.default_extractors(eval_shared_model=candidate, eval_config=single_config,
                                                       tensor_adapter_config=adapter_config, config_version=2),
                    evaluators=tfma.default_evaluators(eval_shared_model=candidate, eval_config=single_config,
                                                       config_version=2)))
            results = {key: evaluation[key] | f"Name{key.title()}" >> beam.Map(_renamed, "", candidate_spec.name)
                       for key in (tfma.constants.METRICS_KEY, tfma.constants.PLOTS_KEY,
                                   tfma.constants.ATTRIBUTIONS_KEY)}
            results[tfma.constants.METRICS_KEY] = (
                results[tfma.constants.METRICS_KEY]
                | "AddStoredBaselineMetrics" >> beam.Map(
                    _with_stored_baseline, stored, candidate_spec.name, baseline_spec.name)
                | "AddDiffMetrics" >> _AddDerivedCrossSliceAndDiffMetrics(  # pylint: disable=no-value-for-parameter
                    derived_computations=[], cross_slice_computations=[], cross_slice_specs=[],
                    baseline_model_name=baseline_spec.name))
            results[tfma.constants.VALIDATIONS_KEY] = (
                results[tfma.constants.METRICS_KEY]
                | "ValidateMetrics" >> beam.Map(metrics_validator.validate_metrics, eval_config))
            _ = results | "WriteResults" >> tfma.WriteResults(writers=tfma.default_writers(
                output_path=output_uri,
                eval_shared_model=[candidate._replace(model_name=candidate_spec.name), baseline],
                eval_config=eval_config))
        logging.info("Evaluation complete. Results written to %s.", output_uri)
        if tfma.metrics.metric_thresholds_from_metrics_specs(eval_config.metrics_specs, eval_config=eval_config):
            self._write_blessing(input_dict, output_dict, exec_properties, output_uri)

    @staticmethod
    def _write_blessing(input_dict, output_dict, exec_properties, output_uri: str) -> None:
        """TFX's blessing, as its executor writes it after TFMA (tfx/components/evaluator/executor.py)."""
        blessing = artifact_utils.get_single_instance(output_dict[standard_component_specs.BLESSING_KEY])
        model = input_dict[standard_component_specs.MODEL_KEY][0]
        blessing.set_string_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY, model.uri)
        blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model.id)
        baseline = input_dict[standard_component_specs.BASELINE_MODEL_KEY][0]
        blessing.set_string_custom_property(constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY, baseline.uri)
        blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY, baseline.id)
        if "current_component_id" in exec_properties:
            blessing.set_string_custom_property("component_id", exec_properties["current_component_id"])
        ok = tfma.load_validation_result(output_uri).validation_ok
        io_utils.write_string_file(os.path.join(
            blessing.uri, constants.BLESSED_FILE_NAME if ok else constants.NOT_BLESSED_FILE_NAME), "")
        blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY,
                                         constants.BLESSED_VALUE if ok else constants.NOT_BLESSED_VALUE)
        logging.info("Blessing result %s written to %s.", ok, blessing.uri)

    def _record_evaluation(self, input_dict, output_dict, exec_properties, stored: Optional[StoredMetrics]) -> None:
        """Where this run's candidate metrics are and what they depend on, for a later run's baseline."""
        if not output_dict.get(standard_component_specs.BLESSING_KEY) or \
                not exec_properties.get(standard_component_specs.EVAL_CONFIG_KEY):
            return
        blessing = artifact_utils.get_single_instance(output_dict[standard_component_specs.BLESSING_KEY])
        eval_config = self._eval_config(input_dict, exec_properties)
        (candidate_spec,) = model_util.get_non_baseline_model_specs(eval_config)
        blessing.set_string_custom_property(
            EVALUATION_URI_PROPERTY, artifact_utils.get_single_uri(output_dict[constants.EVALUATION_KEY]))
        blessing.set_string_custom_property(
            EVALUATION_KEY_PROPERTY, self._key(input_dict, exec_properties, eval_config, candidate_spec))
        if stored is not None:
            blessing.set_string_custom_property(BASELINE_METRICS_FROM_PROPERTY, stored.evaluation_uri)


class EvaluatorSpec(standard_component_specs.EvaluatorSpec):
    """TFX's Evaluator spec, with the baseline's blessing (where its metrics are) and the code's fingerprint."""
    PARAMETERS = {**standard_component_specs.EvaluatorSpec.PARAMETERS,
                  "code_fingerprint": ExecutionParameter(type=str),  # a code edit changes the cache key
                  GATE_THRESHOLD_KEY: ExecutionParameter(type=float, optional=True)}
    INPUTS = {**standard_component_specs.EvaluatorSpec.INPUTS,
              BASELINE_MODEL_BLESSING_KEY: ChannelParameter(type=standard_artifacts.ModelBlessing, optional=True)}


class Evaluator(base_beam_component.BaseBeamComponent):
    """TFX's Evaluator (same outputs, same blessing) that reuses an unchanged baseline's metrics.
    ``gate_threshold`` (a float or a run parameter) replaces the bound of ``eval_config``'s value threshold."""
    SPEC_CLASS = EvaluatorSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)

    def __init__(self, examples: types.BaseChannel, model: types.BaseChannel, *, eval_config: tfma.EvalConfig,
                 code_fingerprint: str, baseline_model: Optional[types.BaseChannel] = None,
                 baseline_model_blessing: Optional[types.BaseChannel] = None,
                 example_splits: Optional[List[str]] = None, gate_threshold=None):
        super().__init__(spec=EvaluatorSpec(
            examples=examples, model=model, baseline_model=baseline_model,
            baseline_model_blessing=baseline_model_blessing, eval_config=eval_config, gate_threshold=gate_threshold,
            example_splits=json_utils.dumps(example_splits), code_fingerprint=code_fingerprint,
            evaluation=types.Channel(type=standard_artifacts.ModelEvaluation),
            blessing=types.Channel(type=standard_artifacts.ModelBlessing)))
