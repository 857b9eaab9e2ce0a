"""The Trainer on Vertex AI (kubeflow.training.engine: vertex), through TFX's own extension.

TFX's Vertex AI Trainer (``tfx.extensions.google_cloud_ai_platform.trainer``) runs a CustomJob whose
replicas each run ``tfx.scripts.run_executor`` with the executor class its ``_GetExecutorClass`` names
(TFX's GenericExecutor), and Vertex AI gives each replica its TF_CONFIG. Here that executor is the project's
(components/training/component.py: TFX's GenericExecutor with ``train_steps``/``eval_steps`` from execution
properties, so they stay run parameters), and the component is the project's Trainer with TFX's Vertex
executor: the job spec, the submission, the polling and the cancellation are TFX's.
"""
from __future__ import annotations

from tfx.dsl.components.base import executor_spec
from tfx.extensions.google_cloud_ai_platform.trainer import executor as vertex_executor

from components.training import component


class Executor(vertex_executor.GenericExecutor):
    """TFX's Vertex AI training executor; each replica runs the project's Trainer executor."""

    def _GetExecutorClass(self):
        return component.Executor


class VertexTrainer(component.Trainer):
    """The project's Trainer, trained by a Vertex AI CustomJob (TFX's Vertex executor)."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
