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
from bench.common import figure, latest_artifacts, write_results
from components.custom.tflite_options import QAT_VARIANT
from pipeline.config import load_config

MODES = ["none", "dynamic_range", "float16", "int8", "qat_int8"]
LATENCY_EXAMPLES = 500
TARGETS = {"int8_size_ratio_min": 3.5, "int8_gate_metric_worse_by_max": 0.01, "int8_speedup_min": 5.0}


def per_example_seconds(call, count):
    call(0)  # warm up (tracing, allocation)
    start = time.perf_counter()
    for i in range(count):
        call(i)
    return (time.perf_counter() - start) / count


def figures_of(modes: dict, gate_name: str) -> list:
    int8 = modes["int8"]
    found = [
        figure("int8 TFLite, smaller than float32 TFLite", int8["size_ratio_vs_float32_tflite"], "x",
               TARGETS["int8_size_ratio_min"], "higher"),
        figure(f"int8 TFLite, {gate_name} worse than the SavedModel by", int8["worse_by"][gate_name], "",
               TARGETS["int8_gate_metric_worse_by_max"], "lower"),
        figure("int8 TFLite, faster per example than the SavedModel signature", int8["speedup_vs_saved_model"], "x",
               TARGETS["int8_speedup_min"], "higher"),
    ]
    for mode in ("dynamic_range", "float16", QAT_VARIANT):
        if mode in modes:
            found.append(figure(f"{mode} TFLite, smaller than float32 TFLite",
                                modes[mode]["size_ratio_vs_float32_tflite"], "x", better="higher"))
            found.append(figure(f"{mode} TFLite, {gate_name} worse than the SavedModel by",
                                modes[mode]["worse_by"][gate_name], ""))
    return found


def main():
    import tensorflow as tf

    import tensorflow_transform as tft

    from components.custom import tflite_converter as C
    from components.custom import tflite_evaluator as E
    from components.training import export, inputs
    from serving import predict

    found = latest_artifacts()
    cfg = load_config()
    user, task = cfg.user_code, cfg.user_code.task
    model_root, transform_output = found["model"], found["transform_graph"]
    examples = found["transformed_examples"]
    features, labels = inputs.read_transformed_examples(os.path.join(examples, "Split-eval", "*"),
                                                        tft.TFTransformOutput(transform_output), user)
    calibration = C.calibration_sample(os.path.join(examples, "Split-train", "*"), transform_output, user, 300)
    modes = [m for m in MODES if m != QAT_VARIANT or os.path.isdir(export.transformed_model_dir(model_root, qat=True))]
    if QAT_VARIANT not in modes:
        print("(no QAT model in the latest run: `tfxp run --set tflite.quantization_aware_training=true` adds it)")
    models = C.convert_variants(model_root, modes, C.representative_dataset(calibration))

    transformed_dir = export.transformed_model_dir(model_root)
    reference = task.compute_metrics(labels, E.saved_model_outputs(transformed_dir, features))
    gate = task.metric(task.GATE_METRIC)
    saved_model = tf.saved_model.load(transformed_dir)  # the serving model, with the transformed-input signature
    serve = saved_model.signatures[export.TRANSFORMED_SIGNATURE]
    one = [{k: tf.constant(v[i:i + 1]) for k, v in features.items()} for i in range(LATENCY_EXAMPLES)]
    saved_model_s = per_example_seconds(lambda i: serve(**one[i]), LATENCY_EXAMPLES)
    serving = saved_model.signatures[export.SIGNATURE]
    raw = predict.first_raw_examples(cfg.resolved_data_root, "eval", LATENCY_EXAMPLES)
    full_serving_s = per_example_seconds(lambda i: serving(examples=tf.constant(raw[i:i + 1])), len(raw) - 1)

    subset = {k: v[:LATENCY_EXAMPLES] for k, v in features.items()}
    results = {}
    float_size = len(models["none"])
    for mode, content in models.items():
        outputs, _ = E.tflite_outputs(content, features)
        metrics = task.compute_metrics(labels, outputs)
        _, lite_s = E.tflite_outputs(content, subset)
        results[mode] = {
            "size_bytes": len(content), "size_ratio_vs_float32_tflite": float_size / len(content),
            "metrics": metrics,
            "worse_by": {n: task.metric(n).degradation(reference[n], v) for n, v in metrics.items()},
            "latency_ms": lite_s * 1000, "speedup_vs_saved_model": saved_model_s / lite_s,
            "speedup_vs_full_serving_signature": full_serving_s / lite_s,
        }

    print(f"eval examples: {len(labels)}; SavedModel " + ", ".join(f"{n} {v:.4f}" for n, v in reference.items()) + "; "
          f"SavedModel signature {saved_model_s * 1000:.3f} ms/example (transformed inputs), "
          f"full serving signature {full_serving_s * 1000:.3f} ms/example (raw tf.Example)")
    worse_by = f"{gate.name} worse by"
    print(f"{'mode':<14}{'KiB':>7}{'size x':>8}  {worse_by:>{len(worse_by)}}{'ms/ex':>8}{'speedup':>9}{'vs full':>9}")
    for mode, r in results.items():
        print(f"{mode:<14}{r['size_bytes'] / 1024:>7.1f}{r['size_ratio_vs_float32_tflite']:>8.2f}"
              f"  {r['worse_by'][gate.name]:>{len(worse_by)}.4f}{r['latency_ms']:>8.3f}"
              f"{r['speedup_vs_saved_model']:>9.1f}{r['speedup_vs_full_serving_signature']:>9.1f}")
    int8 = results.get("int8")
    verdict = {
        "int8_size_ratio": int8["size_ratio_vs_float32_tflite"], f"int8_{gate.name}_worse_by": int8["worse_by"][gate.name],
        "int8_speedup": int8["speedup_vs_saved_model"],
    }
    print("targets: int8 >= 3.5x smaller: {:.2f}x; {} worse by <= 0.01: {:.4f}; >= 5x faster: {:.1f}x".format(
        verdict["int8_size_ratio"], gate.name, int8["worse_by"][gate.name], verdict["int8_speedup"]))
    path = write_results("tflite", {"examples": int(len(labels)), "saved_model": reference,
                                    "saved_model_ms": saved_model_s * 1000, "full_serving_ms": full_serving_s * 1000,
                                    "modes": results, "targets": TARGETS, "measured": verdict,
                                    "figures": figures_of(results, gate.name)})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
