"""AnomaliesGate: a custom TFX component that stops the run when the data has anomalies.

ExampleValidator (TFX 1.16) records anomalies but never stops a pipeline. This
gate reads its ExampleAnomalies artifact and fails, naming every anomalous
feature and the reason, so Transform, Trainer and Pusher never run on data that
breaks the schema. When the data is clean it writes a small ``verdict.json``.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List

from tfx import types
from tfx.dsl.components.base import base_component, base_executor, executor_spec
from tfx.types import artifact_utils, standard_artifacts
from tfx.types.component_spec import ChannelParameter, ExecutionParameter
from tfx.utils import io_utils
from tfxp.errors import TfxpError

ANOMALIES_FILE = "SchemaDiff.pb"  # what ExampleValidator writes per split
VERDICT_FILE = "verdict.json"


class DataValidationVerdict(types.Artifact):
    """The gate's output: which splits were checked, found clean."""
    # KFP v2 needs "<module>.<Class>" (one dot) and its container entrypoint imports the class
    # from that path: `components` exposes it (components/__init__.py).
    TYPE_NAME = "components.DataValidationVerdict"


class AnomaliesFoundError(RuntimeError, TfxpError):
    """The data validation gate stopped the run: nothing downstream ran."""
    exit_code = 3
    outcome = "stopped"


def read_anomalies(anomalies_artifact) -> Dict[str, List[Dict[str, str]]]:
    """{split: [{feature, short, description}, ...]} from an ExampleAnomalies artifact."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    found = {}
    for split in artifact_utils.decode_split_names(anomalies_artifact.split_names):
        path = os.path.join(anomalies_artifact.uri, f"Split-{split}", ANOMALIES_FILE)
        anomalies = anomalies_pb2.Anomalies.FromString(io_utils.read_bytes_file(path))
        problems = []
        for feature, info in sorted(anomalies.anomaly_info.items()):
            problems.append({"feature": feature, "short": info.short_description,
                             "description": info.description})
        if anomalies.HasField("dataset_anomaly_info"):
            info = anomalies.dataset_anomaly_info
            problems.append({"feature": "(dataset)", "short": info.short_description,
                             "description": info.description})
        found[split] = problems
    return found


def format_anomalies(found: Dict[str, List[Dict[str, str]]]) -> str:
    lines = []
    for split, problems in found.items():
        for p in problems:
            lines.append(f"  split {split!r}, feature {p['feature']!r}: {p['short']} ({p['description']})")
    return "\n".join(lines)


class Executor(base_executor.BaseExecutor):
    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        anomalies = artifact_utils.get_single_instance(input_dict["anomalies"])
        found = read_anomalies(anomalies)
        if any(found.values()):
            raise AnomaliesFoundError(
                "data validation failed: ExampleValidator found anomalies against the schema, so the run "
                "stops before Transform and Trainer. Fix the data, or update the curated schema if the "
                f"change is intended.\n{format_anomalies(found)}\n(anomalies artifact: {anomalies.uri})")
        verdict = artifact_utils.get_single_instance(output_dict["verdict"])
        io_utils.write_string_file(os.path.join(verdict.uri, VERDICT_FILE),
                                   json.dumps({"clean_splits": sorted(found)}))


class AnomaliesGateSpec(types.ComponentSpec):
    PARAMETERS = {"code_fingerprint": ExecutionParameter(type=str)}  # a code edit changes the cache key
    INPUTS = {"anomalies": ChannelParameter(type=standard_artifacts.ExampleAnomalies)}
    OUTPUTS = {"verdict": ChannelParameter(type=DataValidationVerdict)}


class AnomaliesGate(base_component.BaseComponent):
    SPEC_CLASS = AnomaliesGateSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)

    def __init__(self, anomalies: types.BaseChannel, *, code_fingerprint: str):
        super().__init__(spec=AnomaliesGateSpec(
            anomalies=anomalies, code_fingerprint=code_fingerprint, verdict=types.Channel(type=DataValidationVerdict)))
