"""What follows from the task: the default head and loss, the metrics and which way is better."""
import numpy as np
import pytest

from components.core.task import AUC, MAE, BinaryClassification, MulticlassClassification, Regression

BINARY = BinaryClassification(label="churned")
MULTICLASS = MulticlassClassification(label="species", class_names=("adelie", "chinstrap", "gentoo"))
REGRESSION = Regression(label="price")


@pytest.mark.parametrize("task, units, activation, loss", [
    (BINARY, 1, "sigmoid", "BinaryCrossentropy"),
    (MULTICLASS, 3, "softmax", "SparseCategoricalCrossentropy"),
    (REGRESSION, 1, "linear", "MeanSquaredError"),
])
def test_default_head_and_loss_follow_the_task(task, units, activation, loss):
    layer = task.output_layer()
    assert (layer.units, layer.activation.__name__) == (units, activation)
    assert type(task.loss()).__name__ == loss
    assert task.output_units == units


def test_label_key_is_the_transformed_name():
    assert BINARY.label_key == "churned_xf"


def test_binary_metrics_threshold_probabilities_at_one_half():
    labels = np.array([1, 0, 1, 0])
    metrics = BINARY.compute_metrics(labels, np.array([[0.9], [0.4], [0.2], [0.6]]))
    assert metrics["accuracy"] == 0.5
    assert BINARY.compute_metrics(labels, np.array([[0.9], [0.1], [0.8], [0.2]]))["auc"] == pytest.approx(1.0)


def test_multiclass_accuracy_is_on_the_arg_max_not_one_vs_rest():
    labels = np.array([0, 1, 2, 2])
    outputs = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.4, 0.35, 0.25], [0.1, 0.1, 0.8]])
    assert MULTICLASS.compute_metrics(labels, outputs) == {"accuracy": 0.75}
    assert MULTICLASS.describe_prediction(outputs[1]) == "species = chinstrap (p = 0.500)"
    assert MULTICLASS.describe_label(np.array([2])) == "gentoo"


def test_regression_metrics_are_mae_and_rmse():
    metrics = REGRESSION.compute_metrics(np.array([1.0, 2.0, 3.0, 4.0]), np.array([[1.0], [2.0], [3.0], [8.0]]))
    assert metrics == {"mae": 1.0, "rmse": 2.0}
    assert REGRESSION.describe_prediction([12.3456]) == "price = 12.35"


def test_agreement_counts_the_same_predictions():
    reference = np.array([[0.9], [0.4], [0.55]])
    agreement = BINARY.agreement(reference, np.array([[0.8], [0.45], [0.45]]))
    assert agreement["same_prediction"] == pytest.approx(2 / 3)
    assert agreement["max_abs_diff"] == pytest.approx(0.1)


def test_degradation_is_absolute_for_fractions_and_relative_for_errors():
    assert AUC.degradation(reference=0.90, value=0.88) == pytest.approx(0.02)
    assert AUC.degradation(reference=0.90, value=0.95) == pytest.approx(-0.05)  # better
    assert MAE.degradation(reference=2.0, value=2.1) == pytest.approx(0.05)     # 5% higher error
    assert MAE.degradation(reference=2.0, value=1.0) == pytest.approx(-0.5)


def test_the_gate_metric_defaults_to_accuracy_or_mae():
    assert (BINARY.GATE_METRIC, MULTICLASS.GATE_METRIC, REGRESSION.GATE_METRIC) == ("accuracy", "accuracy", "mae")
    assert BINARY.metric("auc").tfma_name == "auc"
    with pytest.raises(ValueError, match="regression has no metric 'auc'; expected one of mae, rmse"):
        REGRESSION.metric("auc")


@pytest.mark.parametrize("task, outputs, columns, values", [
    (BINARY, [[0.9], [0.2]], ("predicted_churned", "predicted_churned_probability"), [(1, 0.9), (0, 0.8)]),
    (MULTICLASS, [[0.6, 0.3, 0.1], [0.2, 0.5, 0.3]], ("predicted_species", "predicted_species_probability"),
     [("adelie", 0.6), ("chinstrap", 0.5)]),
    (REGRESSION, [[12.3456], [-1.0]], ("predicted_price",), [(12.3456,), (-1.0,)]),
])
def test_a_prediction_in_words_is_the_class_and_its_probability_or_the_value(task, outputs, columns, values):
    assert task.prediction_columns() == columns
    found = task.prediction_values(np.array(outputs))
    assert [tuple(v if isinstance(v, str) else pytest.approx(float(v)) for v in row) for row in found] == values


def test_the_printed_line_says_what_the_values_say():
    assert MULTICLASS.describe_prediction([0.2, 0.5, 0.3]) == "species = chinstrap (p = 0.500)"
    assert BINARY.describe_prediction([0.2]) == "P(churned) = 0.200"  # P(label), whichever class it predicts
