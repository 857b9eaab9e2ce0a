"""create_pipeline(config): the TFX pipeline, wiring only.

ImportExampleGen -> StatisticsGen -> SchemaGen | ImportSchemaGen -> ExampleValidator
-> AnomaliesGate -> Transform -> Trainer -> Evaluator (baseline: latest blessed model)
-> Pusher (only when blessed) -> serving_model/<name>/<version>/
Trainer -> TFLiteConverter -> TFLiteEvaluator (vs the SavedModel) -> Pusher (lite)
-> serving_model_lite/<name>/<version>/
"""
from __future__ import annotations

from typing import List, Optional

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx

from components import features as F
from components.anomalies_gate import AnomaliesGate
from components.baseline import CANDIDATE_KEY, LatestBlessedNonCandidateModelStrategy
from components.tflite_converter import TFLiteConverter
from components.tflite_evaluator import TFLiteEvaluator
from pipeline.code_fingerprint import module_fingerprint
from pipeline.config import PipelineConfig

PREPROCESSING_FN = "components.preprocessing.preprocessing_fn"
RUN_FN = "components.trainer.run_fn"


def _module_of(fn_path: str) -> str:
    return fn_path.rpartition(".")[0]


def make_eval_config(cfg: PipelineConfig) -> tfma.EvalConfig:
    ev = cfg.evaluation
    accuracy_threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": ev.min_accuracy}),
        change_threshold=tfma.GenericChangeThreshold(
            direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -ev.max_accuracy_drop}))
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(
            signature_name="serving_default",
            label_key=F.TRANSFORMED_LABEL_KEY,
            preprocessing_function_names=["transform_features"])],
        slicing_specs=[tfma.SlicingSpec()] + [tfma.SlicingSpec(feature_keys=[f]) for f in ev.slice_features],
        metrics_specs=[tfma.MetricsSpec(metrics=[
            tfma.MetricConfig(class_name="ExampleCount"),
            tfma.MetricConfig(class_name="AUC"),
            # Gate on the overall slice only: per-hour slices (~200 examples each) are too noisy
            # to block a push; they are computed for analysis.
            tfma.MetricConfig(class_name="BinaryAccuracy", per_slice_thresholds=[
                tfma.PerSliceMetricThreshold(slicing_specs=[tfma.SlicingSpec()], threshold=accuracy_threshold)]),
        ])])


def _filesystem_pusher(model, blessing, base_directory: str):
    """Pusher to <base_directory>/<unix seconds>/, only when ``blessing`` is blessed."""
    return tfx.components.Pusher(
        model=model, model_blessing=blessing,
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=base_directory)))


def create_pipeline(cfg: PipelineConfig, *, schema_file: Optional[str] = None,
                    metadata_connection_config=None,
                    beam_pipeline_args: Optional[List[str]] = None,
                    exclude_candidate_from_baseline: bool = True) -> tfx.dsl.Pipeline:
    """Builds the pipeline from ``cfg``.

    ``schema_file`` overrides ``cfg.schema_path`` (the local runner passes a
    content-addressed copy so that editing the schema invalidates the cache).
    """
    example_gen = tfx.components.ImportExampleGen(
        input_base=cfg.resolved_data_root,
        input_config=tfx.proto.Input(splits=[
            tfx.proto.Input.Split(name="train", pattern="train/*"),
            tfx.proto.Input.Split(name="eval", pattern="eval/*"),
        ]))
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_file = schema_file or cfg.resolved_schema_path
    if schema_file:
        schema_gen = tfx.components.ImportSchemaGen(schema_file=schema_file)
    else:
        schema_gen = tfx.components.SchemaGen(
            statistics=statistics_gen.outputs["statistics"], infer_feature_shape=False)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    anomalies_gate = AnomaliesGate(anomalies=example_validator.outputs["anomalies"])

    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        custom_config={"code_fingerprint": module_fingerprint(_module_of(PREPROCESSING_FN))})
    transform.add_upstream_node(anomalies_gate)  # no Transform on data that failed validation

    trainer = tfx.components.Trainer(
        run_fn=RUN_FN,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(num_steps=cfg.train_steps),
        eval_args=tfx.proto.EvalArgs(num_steps=cfg.eval_steps),
        custom_config={
            "strategy": cfg.strategy,
            "cpu_devices": cfg.cpu_devices,
            "input_cache": cfg.input_cache,
            "num_workers": cfg.num_workers,
            "num_parameter_servers": cfg.num_parameter_servers,
            "worker_timeout_seconds": cfg.worker_timeout_seconds,
            "batch_size": cfg.batch_size,
            "learning_rate": cfg.learning_rate,
            "quantization_aware_training": cfg.tflite.enabled and cfg.tflite.quantization_aware_training,
            "qat_steps": cfg.tflite.qat_steps,
            "code_fingerprint": module_fingerprint(_module_of(RUN_FN)),
        })

    # Baseline: the latest blessed model other than this run's candidate (see
    # components/baseline.py); Kubeflow's compiler only knows TFX's stock strategy.
    if exclude_candidate_from_baseline:
        baseline_resolver = tfx.dsl.Resolver(
            strategy_class=LatestBlessedNonCandidateModelStrategy,
            model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
            model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
            **{CANDIDATE_KEY: trainer.outputs["model"]},
        ).with_id("latest_blessed_model_resolver")
    else:
        baseline_resolver = tfx.dsl.Resolver(
            strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
            model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
            model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
        ).with_id("latest_blessed_model_resolver")

    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline_resolver.outputs["model"],
        eval_config=make_eval_config(cfg),
    ).with_id("evaluator")

    pusher = _filesystem_pusher(trainer.outputs["model"], evaluator.outputs["blessing"],
                                cfg.serving_model_dir).with_id("pusher")

    components = [example_gen, statistics_gen, schema_gen, example_validator, anomalies_gate,
                  transform, trainer, baseline_resolver, evaluator, pusher]
    if cfg.tflite.enabled:
        # TFLite branch: convert -> evaluate each variant against the SavedModel -> push the blessed ones.
        tflite_converter = TFLiteConverter(
            model=trainer.outputs["model"],
            transformed_examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"],
            quantizations=cfg.tflite.quantizations,
            quantization_aware_training=cfg.tflite.quantization_aware_training,
            representative_examples=cfg.tflite.representative_examples,
        ).with_id("tflite_converter")
        tflite_evaluator = TFLiteEvaluator(
            tflite_model=tflite_converter.outputs["tflite_model"],
            model=trainer.outputs["model"],
            model_blessing=evaluator.outputs["blessing"],
            transformed_examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"],
            max_metric_drop=cfg.tflite.max_metric_drop,
        ).with_id("tflite_evaluator")
        pusher_lite = _filesystem_pusher(tflite_evaluator.outputs["lite_model"], tflite_evaluator.outputs["blessing"],
                                         cfg.lite_serving_model_dir).with_id("pusher_lite")
        components += [tflite_converter, tflite_evaluator, pusher_lite]

    return tfx.dsl.Pipeline(
        pipeline_name=cfg.pipeline_name,
        pipeline_root=cfg.resolved_pipeline_root,
        components=components,
        enable_cache=cfg.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args if beam_pipeline_args is not None else cfg.resolved_beam_args,
    )
