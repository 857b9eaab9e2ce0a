"""The Trainer's options: the config's ``training:`` section, their defaults, and the custom_config.

The one place that defines the strategy names, the training defaults, which combinations work,
and how the options travel to ``run_fn`` (TFX's ``custom_config``): ``trainer_custom_config``
builds it, ``TrainerJobConfig.from_custom_config`` reads it back. No TensorFlow here.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional

# Strategies, by the name the config uses (components/training/strategy.py builds them).
STRATEGIES = {
    "auto": "mirrored over all GPUs when there are several, one_device otherwise",
    "one_device": "one GPU, or the CPU",
    "mirrored": "synchronous data parallelism over this machine's GPUs, or over cpu_devices logical CPUs",
    "multi_worker_mirrored": "synchronous data parallelism across worker processes (roles from TF_CONFIG)",
    "parameter_server": "asynchronous: a coordinator dispatches steps to workers; variables on parameter servers",
    "tpu": "only where a TPU cluster resolver finds a TPU",
}
# Strategies that train in fresh local worker processes (components/training/launcher.py).
MULTI_PROCESS_STRATEGIES = ("multi_worker_mirrored", "parameter_server")


@dataclasses.dataclass
class TrainingOptions:
    train_steps: int = 1000
    # The training budget in passes over the train split instead (null: train_steps decides). The
    # Trainer counts the train split's examples and trains ceil(epochs x examples / global batch)
    # steps, so the budget follows the data: 1000 steps of 64 are 6% of a 1M-row train split.
    train_epochs: Optional[float] = None
    eval_steps: int = 100
    batch_size: int = 64            # per replica; the global batch is this x replicas
    # null: model.py decides (its learning_rate hyperparameter's default, or the Tuner's best); a number fixes the
    # learning_rate hyperparameter, in training and tuning (components/training/hyperparameters.py).
    learning_rate: Optional[float] = None
    strategy: str = "mirrored"
    # mirrored on a CPU-only machine: split the CPU into this many logical devices (replicas).
    cpu_devices: int = 0
    # multi_worker_mirrored: local worker processes; parameter_server: workers + parameter servers.
    num_workers: int = 2
    num_parameter_servers: int = 1
    worker_timeout_seconds: int = 1800
    # Keep the decompressed training records in memory after the first pass (data that fits)...
    input_cache: bool = True
    # ... when they fit in this many MB (estimated from the gzip'd files, ~10x on the sample's
    # transformed records); above it, every epoch reads the files again. Bounds the Trainer's memory.
    input_cache_max_mb: int = 2048

    def check(self, quantization_aware_training: bool = False) -> None:
        """Raises ValueError naming the ``training.<key>`` that cannot work."""
        for name in ("train_steps", "eval_steps", "batch_size", "num_workers", "num_parameter_servers",
                     "worker_timeout_seconds", "input_cache_max_mb"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"training.{name} must be at least 1, got {getattr(self, name)}")
        if self.train_epochs is not None and not float(self.train_epochs) > 0:
            raise ValueError(f"training.train_epochs must be > 0 (or null: train_steps decides), "
                             f"got {self.train_epochs}")
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise ValueError(f"training.learning_rate must be > 0, got {self.learning_rate}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"training.strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.cpu_devices < 0:
            raise ValueError(f"training.cpu_devices must be >= 0, got {self.cpu_devices}")
        if self.cpu_devices > 1 and self.strategy != "mirrored":
            raise ValueError(f"training.cpu_devices: {self.cpu_devices} logical CPUs only make replicas for "
                             f"strategy mirrored, not {self.strategy}")
        if quantization_aware_training and self.strategy == "parameter_server":
            raise ValueError("tflite.quantization_aware_training cannot run with training.strategy "
                             "parameter_server (the QAT fine-tuning needs a dataset it can iterate in-process); "
                             "use mirrored or multi_worker_mirrored, or turn QAT off")

    @property
    def needs_own_processes(self) -> bool:
        """True when training must run in fresh worker processes, not in the pipeline's process:
        logical CPU devices and cluster roles are fixed before TensorFlow initializes its runtime,
        which the pipeline's earlier components have already done."""
        return self.strategy in MULTI_PROCESS_STRATEGIES or self.cpu_devices > 1


@dataclasses.dataclass
class TrainerJobConfig:
    """Everything run_fn reads from custom_config."""
    options: TrainingOptions
    user_package: str
    qat_steps: int = 0              # quantization-aware fine-tuning steps; 0 = none

    @classmethod
    def from_custom_config(cls, custom_config: Dict[str, Any]) -> "TrainerJobConfig":
        custom_config = dict(custom_config or {})
        known = {f.name for f in dataclasses.fields(TrainingOptions)}
        options = {k: v for k, v in custom_config.get("training", {}).items() if k in known}
        return cls(options=TrainingOptions(**options),
                   user_package=custom_config.get("user_package", "components"),
                   qat_steps=int(custom_config.get("qat_steps", 0)))


# Steps travel in the Trainer's own train_steps/eval_steps (components/training/component.py), not in custom_config.
_STEP_KEYS = ("train_steps", "eval_steps")


def trainer_custom_config(options: TrainingOptions, user_package: str, qat_steps: int,
                          code_fingerprint: str) -> Dict[str, Any]:
    """The Trainer's custom_config; ``code_fingerprint`` changes the cache key when the code changes."""
    training = {k: v for k, v in dataclasses.asdict(options).items() if k not in _STEP_KEYS}
    return {"training": training, "user_package": user_package, "qat_steps": int(qat_steps),
            "code_fingerprint": code_fingerprint}
