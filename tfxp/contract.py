"""The serving contract: what every pushed model answers, and where a model server listens.

A model the Trainer exports takes serialized ``tf.train.Example``s of raw features and returns the
task's head; every reader of a pushed model (the model server, `tfxp predict`, the InfraValidator's
requests, TFMA, the TFLite branch, the dev loop, the benchmarks) names the signatures and tensors
from here.

    SIGNATURE             examples: string [-1] (serialized tf.Example) -> outputs: float [-1, units]
    TRANSFORM_SIGNATURE   examples -> the transformed features (tf.Transform's graph)
    TRANSFORMED_SIGNATURE the transformed features -> outputs: the bare model (what TFLite converts)
"""
from __future__ import annotations

# TF Serving's default signature (tensorflow::kDefaultServingSignatureDefKey): a request that names
# no signature gets this one.
SIGNATURE = "serving_default"
TRANSFORM_SIGNATURE = "transform_features"
TRANSFORMED_SIGNATURE = "serving_transformed"
EXAMPLES = "examples"   # SIGNATURE's input
OUTPUTS = "outputs"     # SIGNATURE's (and TRANSFORMED_SIGNATURE's) output

# tensorflow_model_server's default ports (--port, --rest_api_port); the docker image's too.
GRPC_PORT = 8500
REST_PORT = 8501
DEFAULT_PORTS = {"rest": REST_PORT, "grpc": GRPC_PORT}

# Files of the TFLite branch's artifacts that `tfxp inspect` reads: the converted model's inputs and
# outputs, and the evaluator's comparison with the SavedModel.
TFLITE_CONTRACT_FILE = "input_contract.json"
TFLITE_REPORT_FILE = "report.json"
