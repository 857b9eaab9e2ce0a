"""Runs the pipeline locally: LocalDagRunner on Beam's DirectRunner, or on Beam's portable job service (`tfxp run`)."""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import time

from pipeline.config import PipelineConfig
from tfxp import nodes
from tfxp.errors import TfxpError
from tfxp.files import atomic_path, is_remote

log = logging.getLogger(__name__)


def stage_schema(cfg: PipelineConfig) -> str:
    """Copies the curated schema to a content-addressed path under the pipeline root.

    ImportSchemaGen's cache key is the file's path, not its content; staging by
    content hash makes an edited schema re-import (and re-run what depends on it)
    while an unchanged one stays cached.
    """
    src = cfg.resolved_schema_path
    if not os.path.exists(src):
        raise FileNotFoundError(f"schema_path {src} does not exist (set schema_path: null to infer one)")
    with open(src, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    dst_dir = os.path.join(cfg.resolved_pipeline_root, "curated_schema", digest)
    dst = os.path.join(dst_dir, "schema.pbtxt")
    if not os.path.exists(dst):
        with atomic_path(dst) as tmp:
            shutil.copyfile(src, tmp)
    return dst


def _is_within(path: str, folder: str) -> bool:
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([path, folder]) == folder


def ensure_data(cfg: PipelineConfig) -> None:
    """Writes TFRecords from ``cfg.source_csv`` when ``data_root`` has none, only where that is safe.

    The conversion happens only for a data_root under output_root: a location the project derives
    and owns (the sample's). An empty or missing data_root anywhere else is the user's data that is
    not there, and converting the configured CSV into it would train on the wrong data.
    """
    from pipeline.input_check import InputError, split_files

    root = cfg.resolved_data_root
    if is_remote(root):
        return
    try:
        split_files(root)
        return
    except InputError:
        pass
    state = "does not exist" if not os.path.exists(root) else "has no TFRecords (train/*, eval/*)"
    how = f"write them with `tfxp data --csv YOUR.csv --output {root}`"
    if cfg.source_csv is None:
        raise InputError(f"data_root {root} {state}: {how}, or set source_csv in the config")
    if not _is_within(root, cfg.resolved_output_root):
        raise InputError(f"data_root {root} {state}: {how} (tfxp run converts source_csv by itself only "
                         f"into a data_root under output_root {cfg.resolved_output_root})")
    from data import tfrecords
    log.info("no TFRecords under %s yet: converting %s", root, cfg.resolved_source_csv)
    tfrecords.convert_csv(cfg.resolved_source_csv, root, features=cfg.user_code.features, shards=cfg.shards)


def check_input(cfg: PipelineConfig) -> dict:
    """Every record of every shard readable, before the pipeline's expensive work (unchanged files skipped)."""
    from pipeline import input_check

    stamp = os.path.join(os.path.dirname(cfg.resolved_metadata_path), "input_check.json")
    return input_check.check_data_root(cfg.resolved_data_root, stamp)


# Beam flags that name the workers' Python dependencies. Without one, every TFX Beam executor builds
# an sdist of TFX itself "for the workers" (tfx.utils.dependency_utils), 1-3 s per component, which
# Beam's DirectRunner never stages.
_DEPENDENCY_FLAGS = ("--extra_package", "--setup_file", "--requirements_file", "--sdk_container_image",
                     "--worker_harness_container_image")
_LOCAL_PRESETS = ("in_memory", "multi_processing", "portable")


def local_beam_args(cfg: PipelineConfig, services=None) -> list:
    """The config's Beam flags, with the endpoints of ``services`` (beam_services.PortableServices) when
    given, before the config's beam_args; on the local presets also --setup_file=<this project's setup.py>:
    what workers need is this project, and naming it spares TFX's TFX-only sdist (on portable, Beam
    builds and stages it for each job; the local worker pool does not install it: see beam_services)."""
    from pipeline.config import BEAM_PRESETS, PROJECT_ROOT, merge_beam_args

    args = merge_beam_args(BEAM_PRESETS[cfg.beam_preset], services.beam_args if services else [], cfg.beam_args)
    if cfg.beam_preset in _LOCAL_PRESETS and not any(a.startswith(_DEPENDENCY_FLAGS) for a in args):
        args.append(f"--setup_file={os.path.join(PROJECT_ROOT, 'setup.py')}")
    return args


def build(cfg: PipelineConfig, services=None):
    """The pipeline ``tfxp run`` runs: the curated schema staged, MLMD in the local sqlite file."""
    from tfx.orchestration import metadata

    from pipeline.pipeline import create_pipeline

    os.makedirs(os.path.dirname(cfg.resolved_metadata_path), exist_ok=True)
    schema_file = stage_schema(cfg) if cfg.schema_path else None
    scoring_rows = None
    if cfg.inference.enabled:
        from pipeline import inference
        scoring_rows = inference.stage_rows(cfg)  # a CSV converted to TFRecords, as for the training data
    return create_pipeline(
        cfg, schema_file=schema_file, beam_pipeline_args=local_beam_args(cfg, services), scoring_rows=scoring_rows,
        metadata_connection_config=metadata.sqlite_metadata_connection_config(
            cfg.resolved_metadata_path))


def execute(cfg: PipelineConfig, tfx_pipeline=None, **runner_options) -> None:
    """Runs the pipeline locally (independent components at once, what the served model needs first: see
    parallel_runner); raises if one fails. ``runner_options``: ParallelLocalDagRunner's (stop, first_alone,
    on_done)."""
    from pipeline.parallel_runner import ParallelLocalDagRunner

    ParallelLocalDagRunner(cfg.parallel_components, first=[nodes.PUSHER], **runner_options).run(tfx_pipeline or build(cfg))


def print_tflite_report(cfg: PipelineConfig) -> None:
    """The TFLite evaluator's table (per variant: size, metrics, drop, latency, blessed) and the lite push."""
    import json

    from components.custom.tflite_evaluator import REPORT_FILE, format_report
    from pipeline import run_summary
    from serving import predict

    uri = run_summary.latest_output_uri(cfg.resolved_metadata_path, cfg.pipeline_name, nodes.TFLITE_EVALUATOR, "blessing")
    if uri is None or not os.path.exists(os.path.join(uri, REPORT_FILE)):
        print("TFLite branch: no evaluation in this run.")
        return
    with open(os.path.join(uri, REPORT_FILE)) as f:
        print(format_report(json.load(f)))
    latest_lite = predict.latest_version(cfg.lite_serving_model_dir, marker_suffix=".tflite")
    print(f"Pushed TFLite models: {latest_lite}" if latest_lite else
          f"No TFLite model has been pushed to {cfg.lite_serving_model_dir}.")


class PipelineRunError(RuntimeError, TfxpError):
    """A component failed: one line saying which and why; the traceback is in the run's log."""
    exit_code = 1  # 2 when the cause is the input (see _as_run_error)

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


def run_pipeline(cfg: PipelineConfig, progress, log_path: str, *, on_start=None, say_input: bool = True,
                 **runner_options) -> None:
    """One run, inside run_log.captured(): the input check, the cleanup after a killed run, the pipeline
    (``on_start`` is called once it is built and about to run; ``runner_options``: see execute)."""
    from pipeline import beam_services, run_guard

    counts = check_input(cfg)
    if say_input:
        progress.say(f"Input: {', '.join(f'{n} {split}' for split, n in counts.items())} records under "
                     f"{cfg.resolved_data_root}, every one readable.")
    for recovered in run_guard.recover_abandoned(cfg.resolved_metadata_path, cfg.pipeline_name,
                                                 cfg.resolved_pipeline_root,
                                                 [cfg.serving_model_dir, cfg.lite_serving_model_dir]):
        progress.say(f"An earlier run was stopped before it finished; cleaned up: {recovered}")
    # beam_preset portable: Beam's job service and worker pool, for this run only.
    with beam_services.for_preset(cfg.beam_preset, os.path.splitext(log_path)[0]) as services, \
            _validation_server_ahead(runner_options) as runner_options:
        tfx_pipeline = build(cfg, services)
        nodes = [component.id for component in tfx_pipeline.components]
        progress.say(f"Running pipeline {cfg.pipeline_name!r}: {len(nodes)} components (full log: {log_path})")
        progress.track(nodes)
        if on_start is not None:
            on_start()
        execute(cfg, tfx_pipeline, **runner_options)


@contextlib.contextmanager
def _validation_server_ahead(runner_options: dict):
    """The InfraValidator's model server process (local_process) started when the Trainer starts: its imports
    overlap the Trainer instead of adding to the validation (components/custom/infra_validator.py StandbyServer).
    Not when a warm process validates in its own server (tfxp dev). Yields the runner options to use."""
    from components.custom import infra_validator

    if infra_validator.runner_override_active():
        yield runner_options
        return
    standby = infra_validator.StandbyServer()
    launched = runner_options.get("on_launch")

    def on_launch(node_id: str) -> None:
        if node_id == nodes.TRAINER:
            standby.start()
        if launched is not None:
            launched(node_id)

    try:
        with infra_validator.local_runner_override(standby.runner):
            yield dict(runner_options, on_launch=on_launch)
    finally:
        standby.close()


def remember_run(cfg: PipelineConfig, by: str, seconds: float, failure: str = "", outcome=None):
    """Writes the run's record for `tfxp runs` (pipeline/history.py); returns the outcome it read (or None)."""
    from pipeline import history, run_outcome

    if outcome is None:
        try:
            outcome = run_outcome.read_outcome(cfg)
        except Exception as e:  # noqa: BLE001 - a run's outcome stands whatever happens to its record
            log.warning("could not read the run's outcome: %s", e)
    history.remember(cfg, history.record_for(cfg, by, seconds, outcome, failure))
    return outcome


def run(cfg: PipelineConfig, *, force: bool = False, prepare_data: bool = True, verbose: bool = False,
        report: bool = True) -> int:
    """`tfxp run`: data if missing, the whole pipeline, then where the served model is and a prediction.

    The terminal gets a few lines (run_log.Progress); the full log of the run goes to a file.
    """
    from serving import predict

    if force:
        cfg.enable_cache = False
        log.info("--force: every component re-executes (cache disabled for this run)")
    if cfg.inference.enabled:
        from pipeline import inference
        inference.stage_rows(cfg)  # bad rows to score fail here, before the data, the lock and the pipeline
    if prepare_data:
        ensure_data(cfg)
    before = set(predict.model_versions(cfg.serving_model_dir))
    elapsed, log_path = run_and_record(cfg, "run", verbose=verbose, report=report)
    latest = predict.latest_version(cfg.serving_model_dir)
    print(f"Pipeline {cfg.pipeline_name!r} finished in {elapsed:.1f}s (full log: {log_path}).")
    if cfg.inference.enabled:
        from pipeline import inference
        print("\n".join(inference.describe_scoring(cfg, inference.scored_rows(cfg))))
    why = why_not_pushed(cfg)
    if latest is None:
        print(f"No model has been pushed to {cfg.serving_model_dir}: {why or 'the Pusher did not push'}.")
        return 1
    if latest not in before:
        print(f"Pushed model: {latest} (it carries warmup requests: the requests the InfraValidator sent)")
    else:
        print(f"No new version was pushed ({why or 'components cached'}); the served model is still: {latest}")
    if cfg.tflite.enabled:
        print_tflite_report(cfg)
    print(describe_a_prediction(cfg, latest))
    print_report(cfg, report)
    from serving.options import GRPC_PORT, REST_PORT

    print(f"Serve it: tfxp serve (TF Serving's REST API on 127.0.0.1:{REST_PORT} and gRPC on 127.0.0.1:{GRPC_PORT}, model "
          f"{cfg.pipeline_name!r}); query it: tfxp predict ROWS.csv. Both take the --config of tfxp run.")
    print("Iterate on your files: tfxp dev (reruns what each save affects, the model served; docs/dev-loop.md).")
    return 0


def run_and_record(cfg: PipelineConfig, by: str, *, verbose: bool = False, report: bool = False):
    """One run under the pipeline's lock (run_pipeline), the components' states printed after it and its record
    written for `tfxp runs` (``by``: the command); returns (seconds, the full log's path). A failure raises
    one error (as_run_error), after the failed run's report when ``report``."""
    from absl import logging as absl_logging

    from pipeline import run_guard, run_log, run_summary
    from pipeline.input_check import InputError

    absl_logging.set_verbosity(absl_logging.INFO)
    with run_guard.exclusive_run(cfg.resolved_metadata_path, cfg.pipeline_name):
        log_path = run_log.log_path_for(cfg.resolved_output_root, cfg.pipeline_name)
        start = time.monotonic()
        started = False
        try:
            with run_log.captured(log_path, to_terminal=verbose) as progress:
                def on_start():
                    nonlocal started
                    started = True

                run_pipeline(cfg, progress, log_path, on_start=on_start)
        except InputError:
            raise
        except Exception as e:
            error = as_run_error(cfg, e, log_path)
            if started:
                remember_run(cfg, by, time.monotonic() - start, failure=str(error))
                print_report(cfg, report)  # a failed run's report is the one most worth reading
            raise error from e
        finally:
            absl_logging.set_verbosity(absl_logging.WARNING)  # the pipeline is over: no more library chatter
            if started:
                print(f"\nComponents in this run of {cfg.pipeline_name!r}:\n"
                      + run_summary.format_states(run_summary.latest_run_states(cfg.resolved_metadata_path,
                                                                                cfg.pipeline_name)))
    elapsed = time.monotonic() - start
    remember_run(cfg, by, elapsed)
    return elapsed, log_path


def print_report(cfg: PipelineConfig, enabled: bool = True) -> None:
    """Writes the run's report (tfxp report) and says where; a report that cannot be written is only a warning."""
    if not enabled:
        return
    from pipeline import report

    try:
        path = os.path.abspath(report.write_report(cfg))
    except Exception as e:  # the run's outcome stands whatever happens to its report
        log.warning("could not write the run report: %s", e)
        return
    print(f"Run report: {path} (open file://{path} in a browser)")


# Errors our own components raise on purpose carry their own message (the CLI prints them as they are).
def _is_project_error(error: Exception) -> bool:
    from components.core.user_code import UserCodeError
    from components.custom.anomalies_gate import AnomaliesFoundError
    from data.tfrecords import DataError
    from pipeline.config import ConfigError
    from pipeline.inference import ScoringInputError

    return isinstance(error, (UserCodeError, AnomaliesFoundError, ConfigError, DataError, ScoringInputError))


def as_run_error(cfg: PipelineConfig, error: Exception, log_path: str) -> Exception:
    from pipeline import run_summary
    from pipeline.beam_services import BeamServicesError

    if _is_project_error(error):
        return error
    if isinstance(error, BeamServicesError):
        return PipelineRunError(f"{error} (full log: {log_path})")
    failed = [node for node, state in run_summary.latest_run_states(
        cfg.resolved_metadata_path, cfg.pipeline_name).items() if state == run_summary.FAILED]
    cause, is_input = summarize_exception(error)
    where = f"component {failed[0]}" if failed else "the pipeline"
    user_line = user_code_line(error, cfg.user_code.directory)
    if user_line:  # the data scientist's own file first: that is what to fix
        cause = f"{user_line}: {cause}"
    return PipelineRunError(f"{where} failed: {cause} (full log and traceback: {log_path})",
                            exit_code=2 if is_input else 1)


_TRACEBACK_FILE = re.compile(r'File "([^"]+\.py)", line (\d+)')


def user_code_line(error: BaseException, user_dir: str) -> str:
    """``components/model.py, line 33``: the innermost place in the data scientist's package where ``error``
    was raised (from its tracebacks, or from a traceback Beam quoted in a message), or ""."""
    import traceback

    from pipeline.code_fingerprint import is_platform_file

    user_dir = os.path.abspath(user_dir)
    found = None
    for e in reversed(_chain(error)):  # the original cause first
        frames = [(f.filename, f.lineno) for f in traceback.extract_tb(e.__traceback__)]
        frames += [(path, int(line)) for path, line in _TRACEBACK_FILE.findall(str(e))]
        inside = [(path, line) for path, line in frames
                  if os.path.abspath(path).startswith(user_dir + os.sep) and not is_platform_file(path)]
        if inside:
            found = inside[-1]
            break
    if found is None:
        return ""
    return f"{os.path.relpath(found[0], os.path.dirname(user_dir))}, line {found[1]}"


_INPUT_ERRORS = [
    (re.compile(r"truncated record|Fewer than \d+ bytes|Not a valid TFRecord"), "an input file is truncated"),
    (re.compile(r"corrupted record|Mismatch of (data|length) mask"), "an input record is corrupted"),
    (re.compile(r"zlib\.error|incorrect data check|incorrect header check|inflate\(\) failed"),
     "an input file's gzip stream is damaged"),
]


def summarize_exception(error: BaseException):
    """(one line, whether it is about the input data) for an exception Beam or TFX raised.

    Beam re-raises a worker's error as a long message holding the whole traceback; its last
    "SomethingError: ..." line is the cause.
    """
    text = "\n".join(str(e) for e in _chain(error))
    for pattern, what in _INPUT_ERRORS:
        if pattern.search(text):
            line = next(l for l in text.splitlines() if pattern.search(l))
            line = re.sub(r":? b'[0-9a-f]{16,}.*", "", line)  # Beam's hex dump of the bytes it read
            return _short(f"{what} ({line.strip()})"), True
    lines = [l.strip() for l in str(error).splitlines() if l.strip()]
    causes = [l for l in lines if re.match(r"^[\w.]*(Error|Exception)\b", l)]
    line = (causes or lines or [type(error).__name__])[-1]
    if not re.match(r"^[\w.]*(Error|Exception)\b", line):
        line = f"{type(error).__name__}: {line}"
    return _short(re.sub(r"\s*\[while running '[^']*'\]", "", line)), False


def _chain(error: BaseException):
    seen = []
    while error is not None and error not in seen:
        seen.append(error)
        error = error.__cause__ or error.__context__
    return seen


def _short(text: str, limit: int = 300) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[:limit - 3] + "..."


def why_not_pushed(cfg: PipelineConfig) -> str:
    """Why this run's candidate was not pushed, from the blessings of the Evaluator and InfraValidator."""
    from pipeline import run_summary
    from pipeline.evaluation import describe_gate

    path, name = cfg.resolved_metadata_path, cfg.pipeline_name
    return run_summary.why_not_pushed(run_summary.blessing_of(path, name, nodes.EVALUATOR),
                                      run_summary.blessing_of(path, name, nodes.INFRA_VALIDATOR),
                                      describe_gate(cfg), cfg.resolved_pipeline_root)


def describe_a_prediction(cfg: PipelineConfig, model_dir: str) -> str:
    """The served model on the first raw eval example, in the task's words, beside the example's label."""
    from serving import predict

    user = cfg.user_code
    example = predict.first_raw_examples(cfg.resolved_data_root, "eval", 1)[0]
    model = predict.load_model(model_dir)
    outputs = predict.predict_serialized(model, [example])
    label = predict.labels_of(model, [example], user.task.label_key)
    shown = [f.name for f in user.model_features][:5] + user.label_source_names
    return (f"Prediction of the served model on the first raw eval example ({predict.describe_example(example, shown)}): "
            f"{user.task.describe_prediction(outputs[0])} (its label: {user.task.describe_label(label)})")
