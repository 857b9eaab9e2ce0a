"""The Trainer on the latest default run's Transform output, in this process, with the config's training
options: where its time goes (the model, the input pipeline, fit and its first epoch, the export), then
its one export against the two Keras-object exports it replaced, on the same trained model, side by
side: the Keras model saved with the serving signatures (as TFX's template saves it) and the bare Keras
model for the TFLite branch. Also what loading each SavedModel costs (TF Serving, `tfxp serve`, the
InfraValidator and TFMA load it). Writes bench/results/trainer.json.

    python -m bench.trainer_bench        (after `make run`)
"""
import os
import tempfile
import time

import components  # noqa: F401  (one Keras, before TensorFlow)
from bench.common import figure, latest_artifacts, write_results
from pipeline.config import load_config
from tfxp import contract

# The one export against the two Keras-object exports it replaced (measured: about 0.07x).
TARGET_EXPORT_RATIO = 0.2
REFERENCE_FIT_STEPS = 20  # the reference exports' model: trained a little, so the optimizer has its slots


def keras_object_exports(model, tf_transform_output, user, directory: str) -> None:
    """The exports the Trainer made before 2026-12-02: the Keras model itself saved twice, its
    functions traced with autograph (tf.function's default)."""
    import tensorflow as tf

    from components.training import export
    from components.training.inputs import to_model_inputs

    specs = {name: tf.TensorSpec([None, 1], t.dtype, name=name) for name, t in zip(model.input_names, model.inputs)}

    @tf.function(input_signature=[specs])
    def serve_transformed(features):
        return {export.OUTPUT_KEY: model(features)}

    tf.saved_model.save(model, os.path.join(directory, "Format-Transformed"),
                        signatures={export.SIGNATURE: serve_transformed})
    model.tft_layer = tf_transform_output.transform_features_layer()
    serving_spec = export.serving_raw_feature_spec(user, tf_transform_output)
    full_spec = tf_transform_output.raw_feature_spec()
    examples = tf.TensorSpec([None], tf.string, name=contract.EXAMPLES)

    @tf.function(input_signature=[examples])
    def serve_tf_examples(serialized):
        transformed = model.tft_layer(tf.io.parse_example(serialized, serving_spec))
        return {export.OUTPUT_KEY: model(to_model_inputs(user, transformed))}

    @tf.function(input_signature=[examples])
    def transform_features(serialized):
        return model.tft_layer(tf.io.parse_example(serialized, full_spec))

    tf.saved_model.save(model, os.path.join(directory, "Format-Serving"), signatures={
        export.SIGNATURE: serve_tf_examples, export.TRANSFORM_SIGNATURE: transform_features})


def seconds_of(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main():
    import tensorflow as tf
    import tensorflow_transform as tft

    from components.training import export, inputs, strategy as strategy_lib, trainer
    from components.training.options import trainer_custom_config

    cfg = load_config()
    options = cfg.training
    if options.needs_own_processes:
        raise SystemExit(f"training.strategy {options.strategy} trains in worker processes: this benchmark "
                         f"measures the in-process Trainer (e.g. --set training.strategy=mirrored)")
    found = latest_artifacts()
    examples = found["transformed_examples"]
    out = tempfile.mkdtemp(prefix="trainer-bench-")
    job = trainer.TrainerJob(
        train_files=[os.path.join(examples, "Split-train", "*")], eval_files=[os.path.join(examples, "Split-eval", "*")],
        transform_output=found["transform_graph"], model_run_dir=os.path.join(out, "run"),
        serving_model_dir=os.path.join(out, "model", "Format-Serving"), train_steps=options.train_steps,
        eval_steps=options.eval_steps, custom_config=trainer_custom_config(options, cfg.user_package, 0, "bench"))
    strategy = strategy_lib.build_strategy(options.strategy, cpu_devices=options.cpu_devices)
    start = time.perf_counter()
    times = trainer.train_and_export(job, strategy, job.serving_model_dir)
    total = time.perf_counter() - start
    print(f"Trainer ({options.train_steps} steps, batch {options.batch_size}, {options.strategy}): {total:.1f} s in "
          f"all; {times.describe()}")

    # The same trained model exported both ways.
    user = cfg.user_code
    tf_transform_output = tft.TFTransformOutput(found["transform_graph"])
    with strategy.scope():
        model = trainer.build_user_model(user, inputs.model_inputs(user, tf_transform_output),
                                         learning_rate=options.learning_rate)
    model.fit(inputs.make_input_dataset(job.train_files, tf_transform_output, user, options.batch_size),
              steps_per_epoch=REFERENCE_FIT_STEPS, verbose=0)
    ours_dir, reference_dir = os.path.join(out, "ours"), os.path.join(out, "keras")
    ours = seconds_of(lambda: export.export_model(model, tf_transform_output, user, ours_dir))
    reference = seconds_of(lambda: keras_object_exports(model, tf_transform_output, user, reference_dir))
    ours_load = seconds_of(lambda: tf.saved_model.load(ours_dir))
    reference_load = seconds_of(lambda: tf.saved_model.load(os.path.join(reference_dir, "Format-Serving")))
    print(f"export: ours {ours:.2f} s (one SavedModel, three signatures), the two Keras-object exports "
          f"{reference:.2f} s: {ours / reference:.2f}x (target <= {TARGET_EXPORT_RATIO}x)")
    print(f"loading the serving SavedModel: ours {ours_load:.2f} s, the Keras object's {reference_load:.2f} s")

    epochs = times.epochs
    rest = epochs[1:] or [0.0]
    figures = [
        figure("Trainer in all (train_and_export, sample)", total, "s"),
        figure("Trainer fit", times.seconds["fit"], "s"),
        figure("Trainer fit: first epoch (tracing, first validation)", epochs[0] if epochs else None, "s"),
        figure("Trainer fit: each later epoch", sum(rest) / len(rest), "s"),
        figure("Trainer export (one SavedModel)", times.seconds["export"], "s"),
        figure("export / the two Keras-object exports it replaced", ours / reference, "x", TARGET_EXPORT_RATIO),
        figure("SavedModel load / the Keras object's", ours_load / reference_load, "x"),
    ]
    path = write_results("trainer", {
        "training": {"train_steps": options.train_steps, "eval_steps": options.eval_steps,
                     "batch_size": options.batch_size, "strategy": options.strategy},
        "total_seconds": total, "phases_seconds": times.seconds, "epochs_seconds": epochs,
        "export_seconds": {"ours": ours, "keras_objects": reference},
        "load_seconds": {"ours": ours_load, "keras_object": reference_load}, "figures": figures})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
