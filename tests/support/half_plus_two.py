"""TF Serving's own test model, rebuilt: ``saved_model_half_plus_two`` (tensorflow/serving
``servables/tensorflow/testdata/saved_model_half_plus_two.py``), a TF1 SavedModel with y = a*x + b.

Signatures, as there: ``serving_default`` (predict, x -> y, float [-1, 1]), ``classify_x_to_y``
(serialized tf.Examples -> scores), ``regress_x_to_y`` and ``regress_x_to_y2`` (-> y, y2 = a*x + c)
and ``regress_x2_to_y3`` (x2 -> y3). ``b`` is a parameter here so that versions answer differently.
"""
from __future__ import annotations

import os


def write(export_dir: str, a: float = 0.5, b: float = 2.0, c: float = 3.0) -> str:
    import tensorflow as tf

    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default(), v1.Session(graph=graph) as sess:
        va, vb, vc = v1.Variable(a, name="a"), v1.Variable(b, name="b"), v1.Variable(c, name="c")
        serialized = v1.placeholder(tf.string, name="tf_example", shape=[None])
        parsed = v1.io.parse_example(serialized, {
            "x": v1.io.FixedLenFeature([1], tf.float32),
            "x2": v1.io.FixedLenFeature([1], tf.float32, default_value=[0.0])})
        x = tf.identity(parsed["x"], name="x")
        y = tf.identity(tf.add(tf.multiply(va, x), vb), name="y")
        y2 = tf.identity(tf.add(tf.multiply(va, x), vc), name="y2")
        x2 = tf.identity(parsed["x2"], name="x2")
        y3 = tf.identity(tf.add(tf.multiply(va, x2), vc), name="y3")
        info = v1.saved_model.utils.build_tensor_info
        build = v1.saved_model.signature_def_utils.build_signature_def
        consts = v1.saved_model.signature_constants

        def regression(inp, out):
            return build({consts.REGRESS_INPUTS: info(inp)}, {consts.REGRESS_OUTPUTS: info(out)},
                         consts.REGRESS_METHOD_NAME)

        signatures = {
            "regress_x_to_y": regression(serialized, y),
            "regress_x_to_y2": regression(serialized, y2),
            "regress_x2_to_y3": regression(x2, y3),
            "classify_x_to_y": build({consts.CLASSIFY_INPUTS: info(serialized)},
                                     {consts.CLASSIFY_OUTPUT_SCORES: info(y)}, consts.CLASSIFY_METHOD_NAME),
            consts.DEFAULT_SERVING_SIGNATURE_DEF_KEY: build({"x": info(x)}, {"y": info(y)}, consts.PREDICT_METHOD_NAME),
        }
        sess.run(v1.global_variables_initializer())
        builder = v1.saved_model.Builder(export_dir)
        builder.add_meta_graph_and_variables(sess, [v1.saved_model.tag_constants.SERVING],
                                             signature_def_map=signatures)
        builder.save()
    return export_dir


def write_warmup(version_dir: str, xs=(1.0, 2.0)) -> str:
    """assets.extra/tf_serving_warmup_requests: one PredictionLog per x, as TFX's InfraValidator writes."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    path = os.path.join(version_dir, "assets.extra", "tf_serving_warmup_requests")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for x in xs:
            log = prediction_log_pb2.PredictionLog()
            log.predict_log.request.model_spec.name = "half_plus_two"
            log.predict_log.request.inputs["x"].CopyFrom(tf.make_tensor_proto([[x]], dtype=tf.float32))
            writer.write(log.SerializeToString())
    return path


def write_examples_model(export_dir: str, a: float = 0.5, b: float = 2.0) -> str:
    """y = a*x + b behind the serving contract's shape (tfxp/contract.py): ``serving_default`` takes
    serialized tf.Examples (``examples``, DT_STRING [-1], feature ``x``) and returns ``outputs``."""
    import tensorflow as tf

    from tfxp import contract

    class ExamplesModel(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=contract.EXAMPLES)])
        def serve(self, examples):
            x = tf.io.parse_example(examples, {"x": tf.io.FixedLenFeature([1], tf.float32)})["x"]
            return {contract.OUTPUTS: a * x + b}

    module = ExamplesModel()
    tf.saved_model.save(module, export_dir, signatures={contract.SIGNATURE: module.serve})
    return export_dir
