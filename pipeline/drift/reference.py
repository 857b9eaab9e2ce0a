"""The training statistics of the run that produced a served model, found through MLMD from its version.

A pushed version is a PushedModel artifact (TFX's Pusher sets ``pushed_version``); upstream of it, by MLMD's
events (the Pusher's blessings, the Evaluator's model, the Trainer's examples, Transform's), are the
examples the model was trained from, and the StatisticsGen execution that read them wrote the statistics
the run validated its data with. Their ``train`` split is what the model learned from.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from pipeline import run_summary
from tfxp.errors import TfxpError

STATISTICS_TYPE, PUSHED_MODEL_TYPE, EXAMPLES_TYPE = "ExampleStatistics", "PushedModel", "Examples"
TRAIN_SPLIT = "train"
STATISTICS_GEN_TYPE = "StatisticsGen"   # the execution type's name ends with it (tfx.components....StatisticsGen)
_MAX_STEPS = 12   # the pipeline's depth from the statistics to the push, with room


class ReferenceNotFoundError(LookupError, TfxpError):
    """No training statistics for the model: the message says which model and where it looked."""


@dataclass
class TrainingReference:
    version: int
    statistics_uri: str
    statistics: object       # DatasetFeatureStatisticsList of the train split

    def describe(self) -> str:
        return f"the training data of model version {self.version} ({self.statistics_uri}, split {TRAIN_SPLIT})"


def _pushed_model(store, version: int):
    for artifact in store.get_artifacts_by_type(PUSHED_MODEL_TYPE):
        if artifact.custom_properties["pushed_version"].string_value == str(version):
            return artifact
    return None


def _statistics_of(store, examples_ids, statistics_types):
    """The newest StatisticsGen output computed from any of the Examples artifacts ``examples_ids``, or None
    (Transform writes ExampleStatistics of its input too: not those)."""
    from ml_metadata.proto import metadata_store_pb2

    statistics_gen = {t.id for t in store.get_execution_types() if t.name.endswith(STATISTICS_GEN_TYPE)}
    consumers = {e.execution_id for e in store.get_events_by_artifact_ids(examples_ids)
                 if e.type == metadata_store_pb2.Event.INPUT}
    consumers = {e.id for e in store.get_executions_by_id(list(consumers)) if e.type_id in statistics_gen}
    outputs = {e.artifact_id for e in (store.get_events_by_execution_ids(list(consumers)) if consumers else [])
               if e.type == metadata_store_pb2.Event.OUTPUT}
    found = [a for a in (store.get_artifacts_by_id(list(outputs)) if outputs else []) if a.type_id in statistics_types]
    return max(found, key=lambda a: a.id) if found else None


def _upstream_statistics(store, artifact):
    """The statistics of the examples upstream of ``artifact``: breadth first over MLMD's events to the
    Examples artifacts the model came from, then the StatisticsGen execution that read them. None if none."""
    from ml_metadata.proto import metadata_store_pb2

    types = {t.name: t.id for t in store.get_artifact_types()}
    statistics_types = {types.get(STATISTICS_TYPE)}
    frontier, seen = [artifact.id], {artifact.id}
    for _ in range(_MAX_STEPS):
        producers = {e.execution_id for e in store.get_events_by_artifact_ids(frontier)
                     if e.type == metadata_store_pb2.Event.OUTPUT}
        inputs = {e.artifact_id for e in (store.get_events_by_execution_ids(list(producers)) if producers else [])
                  if e.type == metadata_store_pb2.Event.INPUT} - seen
        if not inputs:
            return None
        examples = [a.id for a in store.get_artifacts_by_id(list(inputs)) if a.type_id == types.get(EXAMPLES_TYPE)]
        found = _statistics_of(store, examples, statistics_types) if examples else None
        if found is not None:
            return found
        seen |= inputs
        frontier = list(inputs)
    return None


def training_reference(metadata_path: str, pipeline_name: str, version: int) -> TrainingReference:
    """The train-split statistics of the run that pushed ``version``; ReferenceNotFoundError when MLMD has none."""
    from tfx.components.statistics_gen import stats_artifact_utils
    from tfx.types import standard_artifacts

    try:
        store, _ = run_summary.open_runs(metadata_path, pipeline_name)
    except FileNotFoundError as e:
        raise ReferenceNotFoundError(str(e)) from None
    pushed = _pushed_model(store, version)
    if pushed is None:
        raise ReferenceNotFoundError(f"{metadata_path}: no run of pipeline {pipeline_name!r} pushed model version "
                                     f"{version} (give --reference to compare with other data)")
    found = _upstream_statistics(store, pushed)
    if found is None:
        raise ReferenceNotFoundError(f"{metadata_path}: no StatisticsGen output upstream of model version {version}")
    artifact = standard_artifacts.ExampleStatistics()
    artifact.set_mlmd_artifact(found)
    statistics = stats_artifact_utils.load_statistics(artifact, TRAIN_SPLIT).proto()
    return TrainingReference(version, found.uri, statistics)


def served_version(window_versions: dict, pushed_versions: list) -> Optional[int]:
    """The version most logged requests were answered by; else the newest pushed version; None when neither."""
    if window_versions:
        return max(window_versions.items(), key=lambda item: (item[1], item[0]))[0]
    return max(pushed_versions) if pushed_versions else None
