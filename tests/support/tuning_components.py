"""Two stand-ins, to run TFX's resolution of the latest best hyperparameters on a pipeline of a few seconds: one
writes what the Tuner writes, the other takes what the Trainer takes. (No ``from __future__ import annotations``:
TFX reads a function component's type hints; and they live at module level: TFX imports their executor by path.)"""
import json
import os

from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types.standard_artifacts import HyperParameters


@component
def BestHyperparametersWriter(best_hyperparameters: OutputArtifact[HyperParameters],  # noqa: N802
                              learning_rate: Parameter[float]):
    """Writes what the Tuner writes into its best_hyperparameters artifact."""
    with open(os.path.join(best_hyperparameters.uri, "best_hyperparameters.txt"), "w") as f:
        json.dump({"space": [], "values": {"learning_rate": learning_rate}}, f)


@component
def HyperparametersReader(record: Parameter[str],  # noqa: N802
                          hyperparameters: InputArtifact[HyperParameters] = None):
    """Records what it was handed, optional as the Trainer's ``hyperparameters`` input is."""
    values = None
    if hyperparameters is not None:
        with open(os.path.join(hyperparameters.uri, "best_hyperparameters.txt")) as f:
            values = json.load(f)["values"]
    with open(record, "w") as f:
        json.dump(values, f)
