"""TFLite variants vs the SavedModel, side by side in one run, on the latest trained model.

Per mode: file size ratio against float32 TFLite, metric drop against the SavedModel on the
whole eval split, and per-example latency ratio against calling the SavedModel's signature on
one example (the same transformed inputs; the full serving signature, which also parses and
transforms raw tf.Examples, is reported beside it). Writes bench/results/tflite.json.

    python -m bench.tflite_bench        (after `make run`)
"""
import os
import time


import components  # noqa: F401
from bench.common import latest_artifacts, write_results
from pipeline.config import load_config

MODES = ["none", "dynamic_range", "float16", "int8", "qat_int8"]
LATENCY_EXAMPLES = 500
TARGETS = {"int8_size_ratio_min": 3.5, "int8_accuracy_drop_max_pp": 1.0, "int8_speedup_min": 5.0}


def per_example_seconds(call, count):
    call(0)  # warm up (tracing, allocation)
    start = time.perf_counter()
    for i in range(count):
        call(i)
    return (time.perf_counter() - start) / count


def main():
    import tensorflow as tf

    from components import tflite_converter as C
    from components import tflite_evaluator as E
    from components import trainer as T
    from serving import predict

    found = latest_artifacts()
    model_root, transform_output = found["model"], found["transform_graph"]
    examples = found["transformed_examples"]
    features, labels = C.transformed_examples(os.path.join(examples, "Split-eval", "*"), transform_output)
    calibration = C.calibration_sample(os.path.join(examples, "Split-train", "*"), transform_output, 300)
    modes = [m for m in MODES if m != C.QAT_VARIANT or os.path.isdir(os.path.join(model_root, T.QAT_MODEL_DIR))]
    if C.QAT_VARIANT not in modes:
        print("(no QAT model in the latest run: `tfxp run --set tflite.quantization_aware_training=true` adds it)")
    models = C.convert_variants(model_root, modes, C.representative_dataset(calibration))

    transformed_dir = os.path.join(model_root, T.TRANSFORMED_MODEL_DIR)
    reference = E.binary_metrics(labels, E.saved_model_probabilities(transformed_dir, features))
    serve = tf.saved_model.load(transformed_dir).signatures[C.SIGNATURE]
    one = [{k: tf.constant(v[i:i + 1]) for k, v in features.items()} for i in range(LATENCY_EXAMPLES)]
    saved_model_s = per_example_seconds(lambda i: serve(**one[i]), LATENCY_EXAMPLES)
    serving = tf.saved_model.load(os.path.join(model_root, "Format-Serving")).signatures["serving_default"]
    raw = predict.first_raw_examples(load_config().resolved_data_root, "eval", LATENCY_EXAMPLES)
    full_serving_s = per_example_seconds(lambda i: serving(examples=tf.constant(raw[i:i + 1])), len(raw) - 1)

    subset = {k: v[:LATENCY_EXAMPLES] for k, v in features.items()}
    results = {}
    float_size = len(models["none"])
    for mode, content in models.items():
        probabilities, _ = E.tflite_probabilities(content, features)
        metrics = E.binary_metrics(labels, probabilities)
        _, lite_s = E.tflite_probabilities(content, subset)
        results[mode] = {
            "size_bytes": len(content), "size_ratio_vs_float32_tflite": float_size / len(content),
            "accuracy": metrics["accuracy"], "auc": metrics["auc"],
            "accuracy_drop_pp": (reference["accuracy"] - metrics["accuracy"]) * 100,
            "auc_drop_pp": (reference["auc"] - metrics["auc"]) * 100,
            "latency_ms": lite_s * 1000, "speedup_vs_saved_model": saved_model_s / lite_s,
            "speedup_vs_full_serving_signature": full_serving_s / lite_s,
        }

    print(f"eval examples: {len(labels)}; SavedModel accuracy {reference['accuracy']:.4f}, AUC {reference['auc']:.4f}; "
          f"SavedModel signature {saved_model_s * 1000:.3f} ms/example (transformed inputs), "
          f"full serving signature {full_serving_s * 1000:.3f} ms/example (raw tf.Example)")
    print(f"{'mode':<14}{'KiB':>7}{'size x':>8}{'acc drop pp':>12}{'AUC drop pp':>12}{'ms/ex':>8}{'speedup':>9}"
          f"{'vs full':>9}")
    for mode, r in results.items():
        print(f"{mode:<14}{r['size_bytes'] / 1024:>7.1f}{r['size_ratio_vs_float32_tflite']:>8.2f}"
              f"{r['accuracy_drop_pp']:>12.2f}{r['auc_drop_pp']:>12.2f}{r['latency_ms']:>8.3f}"
              f"{r['speedup_vs_saved_model']:>9.1f}{r['speedup_vs_full_serving_signature']:>9.1f}")
    int8 = results.get("int8")
    verdict = {
        "int8_size_ratio": int8["size_ratio_vs_float32_tflite"], "int8_accuracy_drop_pp": int8["accuracy_drop_pp"],
        "int8_speedup": int8["speedup_vs_saved_model"],
    }
    print("targets: int8 >= 3.5x smaller: {:.2f}x; accuracy drop <= 1 pp: {:.2f} pp; >= 5x faster: {:.1f}x".format(
        verdict["int8_size_ratio"], verdict["int8_accuracy_drop_pp"], verdict["int8_speedup"]))
    path = write_results("tflite", {"examples": int(len(labels)), "saved_model": reference,
                                    "saved_model_ms": saved_model_s * 1000, "full_serving_ms": full_serving_s * 1000,
                                    "modes": results, "targets": TARGETS, "measured": verdict})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
