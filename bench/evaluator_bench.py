"""The evaluator on a rerun after a model edit: TFX's Evaluator (TFMA evaluates the candidate and the
baseline again) against ours (the baseline's stored metrics, the candidate alone), side by side in one
process, on the latest default run's Trainer model and eval examples.

The cheapest second model is the same model: it is both the candidate and the baseline (TFMA's work for
a baseline does not depend on which model it is). First ours evaluates it alone, as in the run that
blessed it (that also records where its metrics are); then, in each round, TFX's executor and ours
evaluate it against itself as the baseline, and ours evaluates it alone again (the floor: a baseline
whose metrics are read back should cost next to nothing). Wall and process CPU seconds (Beam's
in-memory runner works in this process's threads: CPU time is less disturbed by other load). Checks
that TFX's and ours wrote the same metrics, validation and blessing. Writes bench/results/evaluator.json.

    python -m bench.evaluator_bench [--rounds N]       (after `make run`)
"""
import argparse
import os
import tempfile
import time

import components  # noqa: F401  (one Keras, before TensorFlow)
from bench.common import figure, write_results
from pipeline.config import load_config
from tfxp import nodes

# A baseline whose metrics are read back should cost next to nothing over the candidate alone.
TARGET_REUSED_OVER_CANDIDATE_ALONE = 1.15


def _artifact(cls, mlmd_artifact, **properties):
    artifact = cls()
    artifact.uri, artifact.id = mlmd_artifact.uri, mlmd_artifact.id
    for name, value in properties.items():
        setattr(artifact, name, value)
    return artifact


def _run(executor_class, inputs, props, beam_args, directory):
    from tfx.types import standard_artifacts

    outputs = {}
    for key, cls in (("evaluation", standard_artifacts.ModelEvaluation),
                     ("blessing", standard_artifacts.ModelBlessing)):
        artifact = cls()
        artifact.uri = os.path.join(directory, key)
        os.makedirs(artifact.uri)
        outputs[key] = [artifact]
    context = executor_class.Context(beam_pipeline_args=beam_args, tmp_dir=os.path.join(directory, "tmp"),
                                     unique_id=os.path.basename(directory))
    start, cpu = time.perf_counter(), time.process_time()
    executor_class(context).Do(inputs, outputs, props)
    return (time.perf_counter() - start, time.process_time() - cpu), outputs


def _same_outputs(a, b) -> bool:
    import tensorflow_model_analysis as tfma
    from tensorflow_model_analysis.writers import metrics_plots_and_validations_writer as writer

    def records(uri):
        return [m.SerializeToString(deterministic=True) for m in writer.load_and_deserialize_metrics(uri)]

    uri_a, uri_b = a["evaluation"][0].uri, b["evaluation"][0].uri
    return (sorted(records(uri_a)) == sorted(records(uri_b))
            and tfma.load_validation_result(uri_a) == tfma.load_validation_result(uri_b)
            and sorted(os.listdir(a["blessing"][0].uri)) == sorted(os.listdir(b["blessing"][0].uri)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="rounds of TFX's, ours, the candidate alone (default 2)")
    args = parser.parse_args()

    from tfx.components.evaluator import executor as tfx_executor
    from tfx.types import standard_artifacts
    from tfx.utils import proto_utils

    from components.custom import evaluator
    from pipeline import code_fingerprint, run_summary
    from pipeline.local_runner import local_beam_args
    from pipeline.evaluation import make_eval_config

    cfg = load_config()
    found = {key: run_summary.latest_output_artifact(cfg.resolved_metadata_path, cfg.pipeline_name, node, key)
             if os.path.exists(cfg.resolved_metadata_path) else None
             for node, key in ((nodes.EXAMPLE_GEN, "examples"), (nodes.TRAINER, "model"))}
    if None in found.values():
        raise SystemExit(f"no model or examples of pipeline {cfg.pipeline_name!r}: run `make run` first")
    examples = _artifact(standard_artifacts.Examples, found["examples"],
                         split_names=found["examples"].properties["split_names"].string_value)
    model = _artifact(standard_artifacts.Model, found["model"])
    props = {"eval_config": proto_utils.proto_to_json(make_eval_config(cfg)), "example_splits": "null",
             "code_fingerprint": code_fingerprint.evaluator_fingerprint()}
    beam_args = local_beam_args(cfg)  # as `tfxp run` passes them
    alone_inputs = {"examples": [examples], "model": [model]}
    with_baseline = {**alone_inputs, "baseline_model": [model]}
    seconds = {"alone": [], "tfx": [], "reused": []}  # per run: [wall, process CPU]
    same = True
    with tempfile.TemporaryDirectory(prefix="evaluator-bench-") as tmp:
        # The run that blessed the model: it records where its metrics are.
        _, first = _run(evaluator.Executor, alone_inputs, props, beam_args, os.path.join(tmp, "first"))
        for i in range(args.rounds):
            tfx_s, tfx_out = _run(tfx_executor.Executor, with_baseline, props, beam_args, os.path.join(tmp, f"tfx{i}"))
            ours_s, ours_out = _run(evaluator.Executor, {**with_baseline, "baseline_model_blessing": first["blessing"]},
                                    props, beam_args, os.path.join(tmp, f"ours{i}"))
            alone_s, _ = _run(evaluator.Executor, alone_inputs, props, beam_args, os.path.join(tmp, f"alone{i}"))
            if not ours_out["blessing"][0].get_string_custom_property(evaluator.BASELINE_METRICS_FROM_PROPERTY):
                raise SystemExit("ours evaluated the baseline again: its metrics were not reused")
            same = same and _same_outputs(tfx_out, ours_out)
            for name, measured in (("tfx", tfx_s), ("reused", ours_s), ("alone", alone_s)):
                seconds[name].append([round(x, 2) for x in measured])
            print(f"round {i + 1} (wall s / process CPU s): TFX's Evaluator {tfx_s[0]:.1f} / {tfx_s[1]:.1f}, "
                  f"ours with the baseline's metrics reused {ours_s[0]:.1f} / {ours_s[1]:.1f}, "
                  f"the candidate alone {alone_s[0]:.1f} / {alone_s[1]:.1f}")
    best = {k: min(wall for wall, _ in v) for k, v in seconds.items()}
    print(f"best of {args.rounds}, wall: TFX's {best['tfx']:.1f} s, ours {best['reused']:.1f} s, the candidate "
          f"alone {best['alone']:.1f} s; same metrics, validation and blessing as TFX's: {same}")
    if not same:
        raise SystemExit("ours and TFX's Evaluator wrote different outputs")
    path = write_results("evaluator", {
        "model": model.uri, "examples": examples.uri, "rounds": args.rounds, "wall_and_cpu_seconds": seconds,
        "figures": [
            figure("evaluator with a baseline, ours (baseline metrics reused) / TFX's", best["reused"] / best["tfx"],
                   "x"),
            figure("evaluator with reused baseline metrics / the candidate alone", best["reused"] / best["alone"], "x",
                   TARGET_REUSED_OVER_CANDIDATE_ALONE),
        ]})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
