"""create_pipeline(config): the TFX pipeline, wiring only.

ImportExampleGen -> StatisticsGen -> SchemaGen | ImportSchemaGen -> ExampleValidator
-> AnomaliesGate -> Transform [-> Tuner (tuning.enabled)] -> Trainer -> Evaluator (baseline: latest blessed model)
                                           -> InfraValidator (loaded and queried in a model server)
-> Pusher (only when both bless; the version carries warmup requests) -> serving_model/<name>/<version>/
Trainer -> TFLiteConverter -> TFLiteEvaluator (vs the SavedModel) -> Pusher (lite)
-> serving_model_lite/<name>/<version>/
With inference.data (batch scoring): ImportExampleGen (the rows to score) -> BulkInferrer (the Trainer's
model, only when the Evaluator blessed it) -> PredictionsToCsv
"""
from __future__ import annotations

from typing import List, Optional, Tuple

# Not `from tfx import v1`: it also imports TFX's Google Cloud and Kubeflow extensions (aiplatform,
# kfp), 3-5 s of every `tfxp run`'s start-up that a local run never uses.
from tfx.components import BulkInferrer, ExampleValidator, Pusher, SchemaGen, StatisticsGen, Transform
from tfx.components.schema_gen.import_schema_gen.component import ImportSchemaGen
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_artifact_strategy import LatestArtifactStrategy
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
from tfx.orchestration.pipeline import Pipeline
from tfx.proto import bulk_inferrer_pb2, example_gen_pb2, infra_validator_pb2, pusher_pb2, trainer_pb2
from tfx.types import Channel, standard_artifacts

from components.custom.anomalies_gate import AnomaliesGate
from components.custom.import_examples import CopyingImportExampleGen
from components.custom.infra_validator import InfraValidator
from components.custom.predictions_csv import PredictionsToCsv
from components.custom.baseline import CANDIDATE_KEY, LatestBlessedNonCandidateModelStrategy
from components.custom.evaluator import Evaluator
from components.custom.tflite_converter import TFLiteConverter
from components.custom.tflite_evaluator import TFLiteEvaluator
from components.training import engines
from components.custom.tuner import Tuner
from components.training.options import trainer_custom_config
from components.training.tuning_options import tuner_custom_config
from pipeline import code_fingerprint
from pipeline.config import PipelineConfig
from pipeline.evaluation import make_eval_config
from pipeline.inference import ROWS_SPLIT, RowsToScore, rows_to_score
from pipeline.run_parameters import RunParameters
from tfxp import contract
from tfxp import nodes

RUN_FN = "components.training.trainer.run_fn"
TUNER_FN = "components.training.tuning.tuner_fn"
# Transform's options beyond TFX's defaults: no pre-/post-transform statistics (and their anomalies
# check against the schema tf.Transform infers from its own output) and no analyzer cache. Nothing
# reads them (the data is checked before Transform by StatisticsGen, ExampleValidator and the gate;
# no Transform takes an analyzer_cache input); without them Transform builds and runs 118 Beam stages
# instead of 207 and computes the same transform (bench/transform_bench.py, docs/transform.md).
ISTIO_INJECT = "sidecar.istio.io/inject"
TRANSFORM_OPTIONS = {"disable_statistics": True, "disable_analyzer_cache": True}


def _filesystem_pusher(model, blessing, base_directory: str, infra_blessing=None):
    """Pusher to <base_directory>/<unix seconds>/, only when ``blessing`` (and ``infra_blessing``) are blessed.

    With an infra blessing, the Pusher pushes the InfraValidator's copy of the model, which carries
    its requests as ``assets.extra/tf_serving_warmup_requests`` (TFX pushes it only when ``model`` is unset).
    """
    return Pusher(
        model=None if infra_blessing is not None else model, model_blessing=blessing,
        infra_blessing=infra_blessing,
        push_destination=pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=base_directory)))


def _infra_validator(cfg: PipelineConfig, model, examples):
    """TFX's InfraValidator: the model must load in a model server and answer requests built from eval
    examples; those requests become its warmup file. ``serving.infra_validation.platform``:
    ``kubernetes``: TFX's KubernetesRunner (a pod of ``serving.image``); ``local_process``: the
    ServingSpec names no platform and `tfxp serve` runs here (components/custom/infra_validator.py)."""
    iv = cfg.serving.infra_validation
    serving_spec = infra_validator_pb2.ServingSpec(
        tensorflow_serving=infra_validator_pb2.TensorFlowServing(image_name=cfg.serving.image_name,
                                                                 tags=[cfg.serving.image_tag]),
        model_name=cfg.pipeline_name)
    if iv.platform == "kubernetes":
        # No Istio sidecar in the model server's pod: in a Kubeflow profile namespace (istio-injection: enabled)
        # it would get one and refuse the validator's plain gRPC (KFP's own step pods carry the same annotation).
        serving_spec.kubernetes.CopyFrom(infra_validator_pb2.KubernetesConfig(
            service_account_name=cfg.serving.kubernetes.service_account or "",
            serving_pod_overrides=infra_validator_pb2.PodOverrides(annotations={ISTIO_INJECT: "false"})))
    component = InfraValidator(
        code_fingerprint=code_fingerprint.infra_validator_fingerprint(), model=model, examples=examples, serving_spec=serving_spec,
        validation_spec=infra_validator_pb2.ValidationSpec(max_loading_time_seconds=iv.max_loading_seconds,
                                                           num_tries=iv.tries),
        request_spec=infra_validator_pb2.RequestSpec(
            tensorflow_serving=infra_validator_pb2.TensorFlowServingRequestSpec(signature_names=[contract.SIGNATURE]),
            split_name="eval", num_examples=iv.examples, make_warmup=True))
    return component.with_id(nodes.INFRA_VALIDATOR)


def _trainer(cfg: PipelineConfig, **inputs):
    """The Trainer of ``kubeflow.training.engine``: TFX's (trains in its own step), TFX's Vertex AI Trainer or the
    TFJob Trainer (components/training/engines.py); run_fn and the project's custom_config are the same in all."""
    engine = cfg.kubeflow.training
    custom_config = trainer_custom_config(
        cfg.training, cfg.user_package, cfg.tflite.qat_steps if cfg.quantization_aware_training else 0,
        code_fingerprint.trainer_fingerprint(cfg.user_package))
    custom_config.update(engines.engine_custom_config(engine, cfg.image, cfg.pipeline_name))
    return engines.trainer_class(engine)(run_fn=RUN_FN, custom_config=custom_config, **inputs)


def _tuning(cfg: PipelineConfig, transform, schema) -> Tuple[list, Optional[Channel]]:
    """(nodes, the Trainer's ``hyperparameters``). tuning.enabled: TFX's Tuner (components/custom/tuner.py) searches
    model.py's space on Transform's output, its best go to the Trainer; tuning.reuse_best with tuning off: TFX's
    Resolver hands over the latest best hyperparameters in MLMD (none yet: nothing, model.py's defaults);
    otherwise no node, model.py's defaults (docs/tuning.md)."""
    tuning = cfg.tuning
    if tuning.enabled:
        tuner = Tuner(
            tuner_fn=TUNER_FN, examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"], schema=schema,
            train_args=trainer_pb2.TrainArgs(num_steps=tuning.steps_per_trial),
            eval_args=trainer_pb2.EvalArgs(num_steps=cfg.training.eval_steps),
            custom_config=tuner_custom_config(tuning, cfg.training, cfg.user_package, cfg.gate_metric.name,
                                              code_fingerprint.tuner_fingerprint(cfg.user_package)),
        ).with_id(nodes.TUNER)
        return [tuner], tuner.outputs["best_hyperparameters"]
    if tuning.uses_latest_best:
        resolver = Resolver(strategy_class=LatestArtifactStrategy,
                            hyperparameters=Channel(type=standard_artifacts.HyperParameters),
                            ).with_id(nodes.HYPERPARAMETERS_RESOLVER)
        return [resolver], resolver.outputs["hyperparameters"]
    return [], None


def _batch_scoring(cfg: PipelineConfig, rows: RowsToScore, model, blessing) -> list:
    """The rows' own ImportExampleGen (one split, copied) -> TFX's BulkInferrer, which scores them with ``model``
    only when ``blessing`` blesses it (and writes nothing otherwise) -> the scored rows as a CSV."""
    example_gen = CopyingImportExampleGen(
        input_base=rows.base,
        input_config=example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name=ROWS_SPLIT, pattern=rows.pattern)]),
        output_config=example_gen_pb2.Output()).with_id(nodes.INFERENCE_EXAMPLE_GEN)  # no re-split
    bulk_inferrer = BulkInferrer(
        examples=example_gen.outputs["examples"], model=model, model_blessing=blessing,
        model_spec=bulk_inferrer_pb2.ModelSpec(model_signature_name=[contract.SIGNATURE]),
    ).with_id(nodes.BULK_INFERRER)
    predictions_csv = PredictionsToCsv(
        inference_result=bulk_inferrer.outputs["inference_result"], user_package=cfg.user_package,
        code_fingerprint=code_fingerprint.predictions_csv_fingerprint(cfg.user_package),
    ).with_id(nodes.PREDICTIONS_CSV)
    return [example_gen, bulk_inferrer, predictions_csv]


def create_pipeline(cfg: PipelineConfig, *, schema_file: Optional[str] = None,
                    metadata_connection_config=None,
                    beam_pipeline_args: Optional[List[str]] = None,
                    exclude_candidate_from_baseline: bool = True,
                    scoring_rows: Optional[RowsToScore] = None,
                    runtime_parameters: bool = False) -> Pipeline:
    """Builds the pipeline from ``cfg``.

    ``schema_file`` overrides ``cfg.schema_path`` (the local runner passes a
    content-addressed copy so that editing the schema invalidates the cache).
    ``scoring_rows`` overrides where the batch scoring branch reads ``cfg.inference.data`` (the local runner
    passes the TFRecords it converted a CSV into).
    ``runtime_parameters``: the data root, the Trainer's steps and the gate threshold become run parameters
    that default to the config's values (pipeline/run_parameters.py; the Kubeflow compile's); else plain values.
    """
    run = RunParameters.runtime(cfg) if runtime_parameters else RunParameters.from_config(cfg)
    # ImportExampleGen that copies the pre-split files instead of re-writing every record with Beam.
    example_gen = CopyingImportExampleGen(
        input_base=run.data_root,
        input_config=example_gen_pb2.Input(splits=[
            example_gen_pb2.Input.Split(name="train", pattern="train/*"),
            example_gen_pb2.Input.Split(name="eval", pattern="eval/*"),
        ])).with_id(nodes.EXAMPLE_GEN)
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"]).with_id(nodes.STATISTICS_GEN)
    schema_file = schema_file or cfg.resolved_schema_path
    if schema_file:
        schema_gen = ImportSchemaGen(schema_file=schema_file).with_id(nodes.SCHEMA_GEN)
    else:
        schema_gen = SchemaGen(
            statistics=statistics_gen.outputs["statistics"], infer_feature_shape=False).with_id(nodes.INFERRED_SCHEMA_GEN)
    example_validator = ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"]).with_id(nodes.EXAMPLE_VALIDATOR)
    anomalies_gate = AnomaliesGate(anomalies=example_validator.outputs["anomalies"],
                                   code_fingerprint=code_fingerprint.gate_fingerprint()).with_id(nodes.ANOMALIES_GATE)

    user = cfg.user_code
    transform = Transform(
        examples=example_gen.outputs["examples"],
        schema=schema_gen.outputs["schema"],
        preprocessing_fn=user.preprocessing_fn,
        custom_config={"code_fingerprint": code_fingerprint.transform_fingerprint(cfg.user_package)},
        **TRANSFORM_OPTIONS).with_id(nodes.TRANSFORM)
    transform.add_upstream_node(anomalies_gate)  # no Transform on data that failed validation
    tuning_nodes, hyperparameters = _tuning(cfg, transform, schema_gen.outputs["schema"])

    trainer = _trainer(
        cfg,
        examples=transform.outputs["transformed_examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        hyperparameters=hyperparameters,
        train_steps=run.train_steps,
        eval_steps=run.eval_steps).with_id(nodes.TRAINER)

    # Baseline: the latest blessed model other than this run's candidate (see
    # components/custom/baseline.py); Kubeflow's compiler only knows TFX's stock strategy.
    if exclude_candidate_from_baseline:
        baseline_resolver = Resolver(
            strategy_class=LatestBlessedNonCandidateModelStrategy,
            model=Channel(type=standard_artifacts.Model),
            model_blessing=Channel(type=standard_artifacts.ModelBlessing),
            **{CANDIDATE_KEY: trainer.outputs["model"]},
        ).with_id(nodes.BASELINE_RESOLVER)
    else:
        baseline_resolver = Resolver(
            strategy_class=LatestBlessedModelStrategy,
            model=Channel(type=standard_artifacts.Model),
            model_blessing=Channel(type=standard_artifacts.ModelBlessing),
        ).with_id(nodes.BASELINE_RESOLVER)

    # TFX's Evaluator that reads an unchanged baseline's metrics back (components/custom/evaluator.py).
    evaluator = Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline_resolver.outputs["model"],
        baseline_model_blessing=baseline_resolver.outputs["model_blessing"],
        eval_config=make_eval_config(cfg),
        gate_threshold=run.gate_threshold if runtime_parameters else None,  # locally: the eval config's own
        code_fingerprint=code_fingerprint.evaluator_fingerprint(),
    ).with_id(nodes.EVALUATOR)

    infra_validator = _infra_validator(cfg, trainer.outputs["model"], example_gen.outputs["examples"])
    pusher = _filesystem_pusher(trainer.outputs["model"], evaluator.outputs["blessing"], cfg.serving_model_dir,
                                infra_blessing=infra_validator.outputs["blessing"]).with_id(nodes.PUSHER)

    components = [example_gen, statistics_gen, schema_gen, example_validator, anomalies_gate,
                  transform, *tuning_nodes, trainer, baseline_resolver, evaluator, infra_validator, pusher]
    if cfg.tflite.enabled:
        # TFLite branch: convert -> evaluate each variant against the SavedModel -> push the blessed ones.
        fingerprint = code_fingerprint.tflite_fingerprint(cfg.user_package)
        tflite_converter = TFLiteConverter(
            model=trainer.outputs["model"],
            transformed_examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"],
            variants=cfg.tflite.variants,
            representative_examples=cfg.tflite.representative_examples,
            user_package=cfg.user_package, code_fingerprint=fingerprint,
        ).with_id(nodes.TFLITE_CONVERTER)
        tflite_evaluator = TFLiteEvaluator(
            tflite_model=tflite_converter.outputs["tflite_model"],
            model=trainer.outputs["model"],
            model_blessing=evaluator.outputs["blessing"],
            transformed_examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"],
            max_metric_drop=cfg.tflite.max_metric_drop,
            user_package=cfg.user_package, code_fingerprint=fingerprint,
        ).with_id(nodes.TFLITE_EVALUATOR)
        pusher_lite = _filesystem_pusher(tflite_evaluator.outputs["lite_model"], tflite_evaluator.outputs["blessing"],
                                         cfg.lite_serving_model_dir).with_id(nodes.LITE_PUSHER)
        components += [tflite_converter, tflite_evaluator, pusher_lite]
    if cfg.inference.enabled:
        components += _batch_scoring(cfg, scoring_rows or rows_to_score(cfg.resolved_inference_data),
                                     trainer.outputs["model"], evaluator.outputs["blessing"])

    return Pipeline(
        pipeline_name=cfg.pipeline_name,
        pipeline_root=cfg.resolved_pipeline_root,
        components=components,
        enable_cache=cfg.enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args if beam_pipeline_args is not None else cfg.resolved_beam_args,
    )
