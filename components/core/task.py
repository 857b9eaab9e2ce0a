"""What to predict: the task the data scientist declares in ``features.py``, and all that follows.

    TASK = BinaryClassification(label="big_tipper")
    TASK = MulticlassClassification(label="species", class_names=("adelie", "chinstrap", "gentoo"))
    TASK = Regression(label="price")

``preprocessing_fn`` outputs the label under ``TASK.label_key`` (``<label>_xf``): an int64 0/1
for binary, an int64 class id in ``[0, num_classes)`` for multi-class, a float for regression.

The task decides the model's default head and loss (``model.py`` may replace them), the
metrics Keras logs while training, the Evaluator's metrics and the direction of its gate, the
TFLite evaluator's metrics and agreement checks, and how predictions are put in words: the line
`tfxp run` and `tfxp predict` print, and the columns `tfxp infer` writes. Nothing here
imports TensorFlow at module level: loading a config reads the task without it.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar, Dict, List, Sequence, Tuple

import numpy as np

from components.core.feature import transformed_name

AUC_THRESHOLDS = 10_000  # as TFMA's AUC, so the TFLite evaluator's AUC compares with the Evaluator's


@dataclasses.dataclass(frozen=True)
class Metric:
    """One metric of a task, as the config, Keras, TFMA and the TFLite evaluator name it."""
    name: str             # what the config and the reports call it: accuracy, auc, mae, rmse
    tfma_class: str       # TFMA MetricConfig class_name (TFMA's own, or a Keras metric class)
    tfma_name: str        # the key TFMA reports it under
    higher_is_better: bool
    bounded: bool         # a fraction in [0, 1]: tolerances are absolute; otherwise relative to its value

    def degradation(self, reference: float, value: float) -> float:
        """How much worse ``value`` is than ``reference``: a difference for fractions, a ratio otherwise."""
        worse = (reference - value) if self.higher_is_better else (value - reference)
        if self.bounded:
            return worse
        return worse / abs(reference) if reference else (0.0 if worse <= 0 else float("inf"))


BINARY_ACCURACY = Metric("accuracy", "BinaryAccuracy", "binary_accuracy", higher_is_better=True, bounded=True)
AUC = Metric("auc", "AUC", "auc", higher_is_better=True, bounded=True)
# TFMA's BinaryAccuracy/AUC would binarise a softmax one-vs-rest and bless it: multi-class uses
# the Keras metric that compares the arg-max with the class id.
SPARSE_ACCURACY = Metric("accuracy", "SparseCategoricalAccuracy", "sparse_categorical_accuracy",
                         higher_is_better=True, bounded=True)
MAE = Metric("mae", "MeanAbsoluteError", "mean_absolute_error", higher_is_better=False, bounded=False)
RMSE = Metric("rmse", "RootMeanSquaredError", "root_mean_squared_error", higher_is_better=False, bounded=False)


@dataclasses.dataclass(frozen=True)
class Task:
    label: str

    KIND: ClassVar[str] = ""
    METRICS: ClassVar[Tuple[Metric, ...]] = ()
    GATE_METRIC: ClassVar[str] = ""      # the metric the Evaluator gates on unless the config names another
    LABEL_DTYPE: ClassVar[str] = "int64"

    def __post_init__(self):
        if not isinstance(self.label, str) or not self.label.isidentifier():
            raise ValueError(f"{type(self).__name__}: label must be a name like 'big_tipper', got {self.label!r}")

    @property
    def label_key(self) -> str:
        """The transformed label's name: what preprocessing_fn outputs and the Trainer reads."""
        return transformed_name(self.label)

    @property
    def output_units(self) -> int:
        return 1

    @property
    def metric_names(self) -> Tuple[str, ...]:
        return tuple(m.name for m in self.METRICS)

    def metric(self, name: str) -> Metric:
        for m in self.METRICS:
            if m.name == name:
                return m
        raise ValueError(f"{self.KIND} has no metric {name!r}; expected one of {', '.join(self.metric_names)}")

    def describe(self) -> str:
        return f"{self.KIND.replace('_', ' ')} of {self.label!r}"

    # -- Keras: the default head, loss and training metrics ---------------------------------------
    def output_layer(self, name: str = "prediction"):
        raise NotImplementedError

    def loss(self):
        raise NotImplementedError

    def keras_metrics(self) -> list:
        raise NotImplementedError

    # -- NumPy: raw model outputs [N, output_units] against labels [N] ----------------------------
    def compute_metrics(self, labels: np.ndarray, outputs: np.ndarray) -> Dict[str, float]:
        raise NotImplementedError

    def predictions(self, outputs: np.ndarray) -> np.ndarray:
        """What the model predicts for each example: a class id, or a value."""
        raise NotImplementedError

    def agreement(self, reference: np.ndarray, outputs: np.ndarray) -> Dict[str, float]:
        """How closely ``outputs`` follow ``reference`` (e.g. a TFLite model vs its SavedModel)."""
        difference = np.abs(_as_2d(outputs) - _as_2d(reference))
        return {"max_abs_diff": float(difference.max(initial=0.0)), "mean_abs_diff": float(difference.mean())}

    # -- words ------------------------------------------------------------------------------------
    # What a model output means, said here only: the columns a scored row gets (`tfxp infer`'s CSV) and
    # their values, and the line `tfxp run`, `tfxp predict` and `tfxp dev` print (built from those values,
    # except binary's, which prints P(label) whichever class it predicts).
    def prediction_columns(self) -> Tuple[str, ...]:
        """The names of what a prediction holds, in the task's words (``predicted_<label>``, ...)."""
        raise NotImplementedError

    def prediction_values(self, outputs) -> List[tuple]:
        """One tuple per row of ``outputs`` [N, output units], in ``prediction_columns`` order: a class
        (its name) and its probability, or a value."""
        raise NotImplementedError

    def describe_prediction(self, output_row: Sequence[float]) -> str:
        raise NotImplementedError

    def describe_label(self, value) -> str:
        return str(value)


def _as_2d(outputs) -> np.ndarray:
    outputs = np.asarray(outputs, np.float32)
    return outputs.reshape(len(outputs), -1)


def _keras():
    import tf_keras as keras  # the project's one Keras (see components/__init__.py)
    return keras


@dataclasses.dataclass(frozen=True)
class BinaryClassification(Task):
    """A 0/1 label; the model outputs P(label = 1)."""
    KIND: ClassVar[str] = "binary_classification"
    METRICS: ClassVar[Tuple[Metric, ...]] = (BINARY_ACCURACY, AUC)
    GATE_METRIC: ClassVar[str] = "accuracy"

    def output_layer(self, name: str = "prediction"):
        return _keras().layers.Dense(1, activation="sigmoid", name=name)

    def loss(self):
        return _keras().losses.BinaryCrossentropy()

    def keras_metrics(self) -> list:
        keras = _keras()
        return [keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")]

    def compute_metrics(self, labels, outputs) -> Dict[str, float]:
        probabilities = _as_2d(outputs)[:, 0]
        labels = np.asarray(labels).reshape(-1)
        auc = _keras().metrics.AUC(num_thresholds=AUC_THRESHOLDS)
        auc.update_state(labels, probabilities)
        return {"accuracy": float(np.mean((probabilities >= 0.5) == (labels == 1))), "auc": float(auc.result())}

    def predictions(self, outputs) -> np.ndarray:
        return (_as_2d(outputs)[:, 0] >= 0.5).astype(np.int64)

    def agreement(self, reference, outputs) -> Dict[str, float]:
        same = float(np.mean(self.predictions(reference) == self.predictions(outputs)))
        return {"same_prediction": same, **super().agreement(reference, outputs)}

    def prediction_columns(self) -> Tuple[str, ...]:
        return f"predicted_{self.label}", f"predicted_{self.label}_probability"

    def prediction_values(self, outputs) -> List[tuple]:
        """(the class, 0 or 1, and its probability): P(label) for 1, 1 - P(label) for 0."""
        probabilities = _as_2d(outputs)[:, 0]
        classes = self.predictions(outputs)
        return [(int(c), np.float32(p if c else 1.0 - p)) for c, p in zip(classes, probabilities)]

    def describe_prediction(self, output_row) -> str:
        return f"P({self.label}) = {float(np.ravel(output_row)[0]):.3f}"

    def describe_label(self, value) -> str:
        return str(int(np.ravel(value)[0]))


@dataclasses.dataclass(frozen=True)
class MulticlassClassification(Task):
    """A class id in [0, num_classes); the model outputs one probability per class (softmax).

    Give ``class_names`` (in id order; preprocessing can map string labels to ids with
    ``transforms.class_index``), or only ``num_classes`` for labels that are ids already.
    """
    class_names: Tuple[str, ...] = ()
    num_classes: int = 0

    KIND: ClassVar[str] = "multiclass_classification"
    METRICS: ClassVar[Tuple[Metric, ...]] = (SPARSE_ACCURACY,)
    GATE_METRIC: ClassVar[str] = "accuracy"

    def __post_init__(self):
        super().__post_init__()
        names = tuple(str(n) for n in self.class_names)
        if names and self.num_classes and self.num_classes != len(names):
            raise ValueError(f"MulticlassClassification({self.label!r}): num_classes {self.num_classes} but "
                             f"{len(names)} class_names")
        if not names:
            names = tuple(str(i) for i in range(self.num_classes))
        if len(names) < 3:
            raise ValueError(f"MulticlassClassification({self.label!r}): needs at least 3 classes (class_names or "
                             f"num_classes); for two, use BinaryClassification")
        if len(set(names)) != len(names):
            raise ValueError(f"MulticlassClassification({self.label!r}): class_names repeat a name")
        object.__setattr__(self, "class_names", names)
        object.__setattr__(self, "num_classes", len(names))

    @property
    def output_units(self) -> int:
        return self.num_classes

    def output_layer(self, name: str = "prediction"):
        return _keras().layers.Dense(self.num_classes, activation="softmax", name=name)

    def loss(self):
        return _keras().losses.SparseCategoricalCrossentropy()

    def keras_metrics(self) -> list:
        return [_keras().metrics.SparseCategoricalAccuracy(name="accuracy")]

    def compute_metrics(self, labels, outputs) -> Dict[str, float]:
        labels = np.asarray(labels).reshape(-1)
        return {"accuracy": float(np.mean(self.predictions(outputs) == labels))}

    def predictions(self, outputs) -> np.ndarray:
        return np.argmax(_as_2d(outputs), axis=1).astype(np.int64)

    def agreement(self, reference, outputs) -> Dict[str, float]:
        same = float(np.mean(self.predictions(reference) == self.predictions(outputs)))
        return {"same_prediction": same, **super().agreement(reference, outputs)}

    def prediction_columns(self) -> Tuple[str, ...]:
        return f"predicted_{self.label}", f"predicted_{self.label}_probability"

    def prediction_values(self, outputs) -> List[tuple]:
        """(the class name of the arg-max, its probability)."""
        outputs = _as_2d(outputs)
        best = self.predictions(outputs)
        return [(self.class_names[i], row[i]) for i, row in zip(best, outputs)]

    def describe_prediction(self, output_row) -> str:
        ((name, probability),) = self.prediction_values([np.ravel(output_row)])
        return f"{self.label} = {name} (p = {float(probability):.3f})"

    def describe_label(self, value) -> str:
        index = int(np.ravel(value)[0])
        return self.class_names[index] if 0 <= index < self.num_classes else f"id {index}"


@dataclasses.dataclass(frozen=True)
class Regression(Task):
    """A real-valued label; the model outputs the value (a linear head)."""
    KIND: ClassVar[str] = "regression"
    METRICS: ClassVar[Tuple[Metric, ...]] = (MAE, RMSE)
    GATE_METRIC: ClassVar[str] = "mae"
    LABEL_DTYPE: ClassVar[str] = "float32"

    def output_layer(self, name: str = "prediction"):
        return _keras().layers.Dense(1, name=name)

    def loss(self):
        return _keras().losses.MeanSquaredError()

    def keras_metrics(self) -> list:
        keras = _keras()
        return [keras.metrics.MeanAbsoluteError(name="mae"), keras.metrics.RootMeanSquaredError(name="rmse")]

    def compute_metrics(self, labels, outputs) -> Dict[str, float]:
        error = self.predictions(outputs) - np.asarray(labels, np.float64).reshape(-1)
        return {"mae": float(np.mean(np.abs(error))), "rmse": float(np.sqrt(np.mean(error ** 2)))}

    def predictions(self, outputs) -> np.ndarray:
        return _as_2d(outputs)[:, 0].astype(np.float64)

    def prediction_columns(self) -> Tuple[str, ...]:
        return (f"predicted_{self.label}",)

    def prediction_values(self, outputs) -> List[tuple]:
        return [(value,) for value in _as_2d(outputs)[:, 0]]

    def describe_prediction(self, output_row) -> str:
        ((value,),) = self.prediction_values([np.ravel(output_row)])
        return f"{self.label} = {float(value):.4g}"

    def describe_label(self, value) -> str:
        return f"{float(np.ravel(value)[0]):.4g}"


TASK_TYPES = (BinaryClassification, MulticlassClassification, Regression)
