"""`tfxp diagnose-input`: is training input-bound or compute-bound, and which input stage limits?

On the latest Transform output it measures, in one process, examples/s of:
  1. the input pipeline alone, stage by stage (read -> +shuffle -> +batch -> +parse -> +prefetch),
     and TFX's own `fn_args.data_accessor.tf_dataset_factory` reading the same files;
  2. training with the real model on data already in memory (compute alone) and fed by the
     real input pipeline.
Input-bound when the pipeline delivers fewer examples/s than the model consumes.
"""
from __future__ import annotations

import os
import time
from typing import Callable, Dict, List

import components  # noqa: F401  (one Keras)


def examples_per_second(make_dataset: Callable, examples: int = 40_000) -> float:
    """Examples/s of a batched dataset, counted inside the graph (no per-element Python overhead).

    A first pass of the same size warms it up (file opening, shuffle buffer, cache filling).
    """
    import tensorflow as tf

    dataset = make_dataset()
    elements = max(1, examples // _batch_size_hint(dataset))
    counted = dataset.take(elements)

    @tf.function(reduce_retracing=True)
    def run():
        return counted.reduce(tf.constant(0, tf.int64),
                              lambda total, element: total + tf.cast(tf.shape(_label_of(element))[0], tf.int64))

    run()  # warm-up pass
    start = time.perf_counter()
    total = int(run())
    return total / (time.perf_counter() - start)


def _label_of(element):
    return element[1] if isinstance(element, tuple) else element


def _batch_size_hint(dataset) -> int:
    spec = dataset.element_spec
    shape = (spec[1] if isinstance(spec, tuple) else spec).shape
    return int(shape[0]) if shape.rank and shape[0] is not None else 64


def stage_datasets(files: List[str], tf_transform_output, user, batch_size: int) -> Dict[str, Callable]:
    """Training's own input pipeline (inputs.make_input_dataset), cut after each stage; each repeats
    forever and is counted in batches of the same size, so the stages compare like for like."""
    from components.training.inputs import make_input_dataset

    def upto(stage, cache=False):
        return lambda: make_input_dataset(files, tf_transform_output, user, batch_size, cache=cache, stop_after=stage)

    return {"read": upto("read"), "+shuffle": upto("shuffle"), "+parse": upto("parse"),
            "+prefetch (full pipeline)": upto(None), "+cache (full pipeline)": upto(None, cache=True)}


def tfx_dataset_factory(examples_uri: str, files: List[str], tf_transform_output, label_key: str, batch_size: int):
    """What TFX's `fn_args.data_accessor.tf_dataset_factory` gives run_fn for the same files."""
    from tfx.components.util import examples_utils, tfxio_utils
    from tfx.proto import example_gen_pb2
    from tfx.types import artifact_utils, standard_artifacts
    from tfx_bsl.public import tfxio

    artifact = standard_artifacts.Examples()
    artifact.uri = examples_uri
    artifact.split_names = artifact_utils.encode_split_names(["train", "eval"])
    examples_utils.set_payload_format(artifact, example_gen_pb2.PayloadFormat.FORMAT_TF_EXAMPLE)
    factory = tfxio_utils.get_tf_dataset_factory_from_artifact([artifact], [])
    return factory(files, tfxio.TensorFlowDatasetOptions(batch_size=batch_size, label_key=label_key),
                   tf_transform_output.transformed_metadata.schema).repeat()


def training_examples_per_second(model, dataset, batch_size: int, steps: int = 60) -> float:
    start = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0)
    return steps * batch_size / (time.perf_counter() - start)


def diagnose(transformed_examples_uri: str, transform_output: str, user, batch_size: int = 64,
             measure_examples: int = 40_000, train_steps: int = 60, rounds: int = 3) -> Dict:
    """Measures every pipeline (and training) ``rounds`` times, alternating, and keeps each one's
    best: on a shared, noisy machine the alternation gives every candidate the same conditions."""
    import tensorflow as tf
    import tensorflow_transform as tft

    from components.training.inputs import make_input_dataset, model_inputs
    from components.training.trainer import build_user_model

    tft_output = tft.TFTransformOutput(transform_output)
    files = sorted(tf.io.gfile.glob(os.path.join(transformed_examples_uri, "Split-train", "*")))
    tf.get_logger().setLevel("ERROR")  # one tf.function per measurement is intended
    candidates = dict(stage_datasets(files, tft_output, user, batch_size))
    candidates["TFX tf_dataset_factory"] = lambda: tfx_dataset_factory(transformed_examples_uri, files, tft_output,
                                                                       user.task.label_key, batch_size)
    best: Dict[str, float] = {}
    for _ in range(rounds):
        for name, make in candidates.items():
            best[name] = max(best.get(name, 0.0), examples_per_second(make, measure_examples))
    factory_eps = best.pop("TFX tf_dataset_factory")
    stages = best

    model = build_user_model(user, model_inputs(user, tft_output))
    pipeline = make_input_dataset(files, tft_output, user, batch_size, cache=True)
    in_memory = pipeline.take(20).cache().repeat()
    model.fit(in_memory, epochs=1, steps_per_epoch=max(20, train_steps // 2), verbose=0)  # warm-up
    compute_eps = fed_eps = 0.0
    for _ in range(rounds):
        compute_eps = max(compute_eps, training_examples_per_second(model, in_memory, batch_size, train_steps))
        fed_eps = max(fed_eps, training_examples_per_second(model, pipeline, batch_size, train_steps))

    input_eps = stages["+cache (full pipeline)"]  # what training uses (input_cache: true)
    names = [n for n in stages if n != "+cache (full pipeline)"]
    drops = {names[i]: stages[names[i - 1]] / stages[names[i]] for i in range(1, len(names))}
    limiting = max(drops, key=drops.get)
    ratio = input_eps / compute_eps
    return {
        "batch_size": batch_size, "files": len(files), "rounds": rounds, "stages_examples_per_second": stages,
        "tf_dataset_factory_examples_per_second": factory_eps,
        "ours_vs_tf_dataset_factory": input_eps / factory_eps,
        "training_in_memory_examples_per_second": compute_eps,
        "training_with_pipeline_examples_per_second": fed_eps,
        "input_over_compute": ratio, "verdict": "input-bound" if ratio < 1.0 else "compute-bound",
        "limiting_stage": limiting, "limiting_stage_slowdown": drops[limiting],
    }


def format_diagnosis(d: Dict) -> str:
    lines = [f"Input pipeline over {d['files']} transformed train file(s), batch {d['batch_size']} "
             f"(best of {d['rounds']} alternating rounds):"]
    for name, eps in d["stages_examples_per_second"].items():
        lines.append(f"  {name:<28}{eps:>12,.0f} examples/s")
    lines.append(f"  {'TFX tf_dataset_factory':<28}{d['tf_dataset_factory_examples_per_second']:>12,.0f} examples/s"
                 f"   (ours, cached: {d['ours_vs_tf_dataset_factory']:.1f}x)")
    lines.append(f"Training with the real model: {d['training_in_memory_examples_per_second']:,.0f} examples/s on "
                 f"data in memory (compute alone), {d['training_with_pipeline_examples_per_second']:,.0f} examples/s "
                 f"fed by the pipeline.")
    share = d["training_with_pipeline_examples_per_second"] / d["training_in_memory_examples_per_second"]
    if share < 0.9:
        lines.append(f"Fed by the pipeline, training runs at {share:.0%} of its in-memory speed: the pipeline's "
                     f"threads share the CPU with the model (more cores, or `input_cache`, help).")
    lines.append(f"Verdict: {d['verdict'].upper()}: the input pipeline delivers {d['input_over_compute']:.1f}x what "
                 f"the model consumes. The stage that costs most is {d['limiting_stage']!r} "
                 f"({d['limiting_stage_slowdown']:.1f}x slower than the stage before it).")
    return "\n".join(lines)
