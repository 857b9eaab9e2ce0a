"""Platform: the project's custom TFX components, one file each with spec + executor.

anomalies_gate.py    stops the run before Transform when ExampleValidator found anomalies
baseline.py          the Evaluator's baseline: the latest blessed model other than the candidate
evaluator.py         TFX's Evaluator that reads an unchanged baseline's metrics back instead of recomputing them
import_examples.py   ImportExampleGen that copies pre-split TFRecord shards instead of rewriting them with Beam
infra_validator.py   TFX's InfraValidator with `tfxp serve` (local process, or a standby one) as its model server
tflite_options.py    the tflite: section of the config, the quantization modes (no TensorFlow)
tflite_converter.py  the Trainer's model -> one .tflite per quantization mode
tflite_evaluator.py  runs each variant in the TFLite interpreter, measures it by the task, blesses it
predictions_csv.py   BulkInferrer's PredictionLogs -> a CSV of the scored rows, the prediction in the task's words

Executors read and write artifacts only through TFX's fileio (artifact URIs are gs:// on Kubeflow).
"""
