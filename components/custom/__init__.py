"""Platform: the project's custom TFX components, one file each with spec + executor.

anomalies_gate.py    stops the run before Transform when ExampleValidator found anomalies
baseline.py          the Evaluator's baseline: the latest blessed model other than the candidate
tflite_options.py    the tflite: section of the config, the quantization modes (no TensorFlow)
tflite_converter.py  the Trainer's model -> one .tflite per quantization mode
tflite_evaluator.py  runs each variant in the TFLite interpreter, measures it by the task, blesses it

Executors read and write artifacts only through TFX's fileio (artifact URIs are gs:// on Kubeflow).
"""
