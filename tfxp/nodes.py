"""The pipeline's node ids: what pipeline/pipeline.py names each component (``with_id``), and what the
report, the run summary, the run guard, the dev loop and the benchmarks look up in MLMD.

Rename a node here and every reader follows. TFX's default id is the component's class name; the
nodes below with a lower-case id are the ones this project names itself.
"""
from __future__ import annotations

EXAMPLE_GEN = "ImportExampleGen"
STATISTICS_GEN = "StatisticsGen"
SCHEMA_GEN = "ImportSchemaGen"
INFERRED_SCHEMA_GEN = "SchemaGen"  # when the config names no schema file
EXAMPLE_VALIDATOR = "ExampleValidator"
ANOMALIES_GATE = "AnomaliesGate"
TRANSFORM = "Transform"
# Tuning (config tuning:): TFX's Tuner, or, with tuning off and tuning.reuse_best, the resolver of its latest best.
TUNER = "tuner"
HYPERPARAMETERS_RESOLVER = "latest_hyperparameters_resolver"
TRAINER = "Trainer"
BASELINE_RESOLVER = "latest_blessed_model_resolver"
EVALUATOR = "evaluator"
INFRA_VALIDATOR = "infra_validator"
PUSHER = "pusher"
TFLITE_CONVERTER = "tflite_converter"
TFLITE_EVALUATOR = "tflite_evaluator"
LITE_PUSHER = "pusher_lite"
# The batch scoring branch (config inference.data): its rows, TFX's BulkInferrer, the scored CSV.
INFERENCE_EXAMPLE_GEN = "inference_example_gen"
BULK_INFERRER = "bulk_inferrer"
PREDICTIONS_CSV = "predictions_csv"
INFERENCE_NODES = (INFERENCE_EXAMPLE_GEN, BULK_INFERRER, PREDICTIONS_CSV)

# The nodes that write a version directory into a serving directory (the run guard removes what a
# killed one left half-written).
PUSHERS = (PUSHER, LITE_PUSHER)
