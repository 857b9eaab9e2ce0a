"""The Tuner's options: the config's ``tuning:`` section, its defaults, and the Tuner's custom_config.

Off by default. On, TFX's Tuner runs the search model.py declares (components/training/tuning.py) after
Transform and hands its best hyperparameters to the Trainer (pipeline/pipeline.py, docs/tuning.md).
``tuner_custom_config`` builds what the Tuner's ``tuner_fn`` gets, ``TunerJobConfig.from_custom_config`` reads
it back. No TensorFlow here.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional

from components.training.options import TrainingOptions

# KerasTuner's algorithms, by the name the config uses.
ALGORITHMS = {
    "random": "RandomSearch: values drawn at random from the declared ranges",
    "bayesian": "BayesianOptimization: a Gaussian process proposes the next values from the scores so far",
    "hyperband": "Hyperband: many short trials, the best continued longer (successive halving)",
}


@dataclasses.dataclass
class TuningOptions:
    # Run TFX's Tuner after Transform; the Trainer trains with the best hyperparameters it finds.
    enabled: bool = False
    algorithm: str = "random"
    # At most this many trials (hyperband plans its own number: max_trials stops it earlier; docs/tuning.md).
    max_trials: int = 10
    # Training steps of one trial (hyperband: of its longest trials), in up to 10 epochs that each validate on
    # the first training.eval_steps batches of the eval split; a trial's score is its best epoch's.
    steps_per_trial: int = 200
    # Each trial trains this many times from scratch and scores the mean: less noise, as many times the cost.
    executions_per_trial: int = 1
    # After this many failed trials in a row the search stops; the best completed trial still wins.
    max_consecutive_failed_trials: int = 3
    # Trials in parallel: >1 runs KerasTuner's distributed mode, a chief oracle and this many worker processes
    # on this machine (each trains one trial at a time; docs/tuning.md); 1: the trials one after another.
    workers: int = 1
    # The search algorithm's seed (null: another sequence of trials each time the Tuner runs).
    seed: Optional[int] = None
    # With tuning off: train with the best hyperparameters of the latest Tuner run of this pipeline (from MLMD;
    # none yet: model.py's defaults).
    reuse_best: bool = False

    def check(self) -> None:
        """Raises ValueError naming the ``tuning.<key>`` that cannot work."""
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"tuning.algorithm must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}")
        for name in ("max_trials", "steps_per_trial", "executions_per_trial", "max_consecutive_failed_trials",
                     "workers"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"tuning.{name} must be at least 1, got {getattr(self, name)}")

    @property
    def uses_latest_best(self) -> bool:
        """The Trainer takes the latest best hyperparameters from MLMD (tuning off, reuse_best on)."""
        return self.reuse_best and not self.enabled


# What the trials take from training: (steps travel in TFX's TrainArgs and EvalArgs; the rest of training's
# options would only re-run a cached Tuner).
TUNER_TRAINING_KEYS = ("batch_size", "learning_rate", "strategy", "cpu_devices", "input_cache", "input_cache_max_mb")
# Keys of the section that decide whether the Tuner runs, not what it does.
_WIRING_KEYS = ("enabled", "reuse_best")


@dataclasses.dataclass
class TunerJobConfig:
    """Everything tuner_fn reads from custom_config."""
    options: TuningOptions
    training: TrainingOptions
    user_package: str
    objective_metric: str   # the task's metric the search maximizes or minimizes: the evaluation's gate metric

    @classmethod
    def from_custom_config(cls, custom_config: Dict[str, Any]) -> "TunerJobConfig":
        custom_config = dict(custom_config or {})
        return cls(options=TuningOptions(**custom_config.get("tuning", {})),
                   training=TrainingOptions(**custom_config.get("training", {})),
                   user_package=custom_config.get("user_package", "components"),
                   objective_metric=custom_config["objective_metric"])


def tuner_custom_config(options: TuningOptions, training: TrainingOptions, user_package: str,
                        objective_metric: str, code_fingerprint: str) -> Dict[str, Any]:
    """The Tuner's custom_config; ``code_fingerprint`` changes the cache key when the code (the search space) does."""
    tuning = {k: v for k, v in dataclasses.asdict(options).items() if k not in _WIRING_KEYS}
    return {"tuning": tuning, "training": {k: getattr(training, k) for k in TUNER_TRAINING_KEYS},
            "user_package": user_package, "objective_metric": objective_metric, "code_fingerprint": code_fingerprint}
