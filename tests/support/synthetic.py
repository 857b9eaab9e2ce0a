"""Synthetic data from any feature list and task: the platform tests' datasets.

``write_csv(path, user, rows)`` writes a CSV with one column per feature of the user package's
FEATURES, values drawn by dtype and kind, some cells left empty (missing values), and a label
column that is a learnable function of the model inputs: a class for classification (0/1, or a
class name, or an id), a value for regression. The label column is the LABEL_SOURCE feature
named like the task's label.
"""
from __future__ import annotations

import base64
import csv
from typing import Dict, List

import numpy as np

from components.core.feature import (BUCKETIZED, BYTES, CATEGORICAL, ENCODING_BASE64, FLOAT, INT64, LABEL_SOURCE,
                                     NUMERIC, VOCABULARY, Feature)
from components.core.task import BinaryClassification, MulticlassClassification, Regression
from components.core.user_code import UserCode

MISSING_RATE = 0.04
VOCABULARY_VALUES = 6


def _raw_column(feature: Feature, n: int, rng) -> np.ndarray:
    """Raw values of one feature (object array: numbers, strings or bytes)."""
    if feature.kind == CATEGORICAL:
        return rng.integers(0, feature.num_buckets, n).astype(object)
    if feature.kind == VOCABULARY:
        words = ([f"{feature.name}_{i}" for i in range(VOCABULARY_VALUES)] if feature.dtype == BYTES
                 else [1000 + 7 * i for i in range(VOCABULARY_VALUES)])
        return np.array(words, dtype=object)[rng.integers(0, len(words), n)]
    if feature.dtype == FLOAT:
        values = rng.uniform(0, 100, n) if feature.kind == BUCKETIZED else rng.normal(50, 10, n)
        return np.round(values, 3).astype(object)
    if feature.dtype == INT64:
        return rng.poisson(30, n).astype(object)
    if feature.encoding == ENCODING_BASE64:
        return np.array([rng.bytes(8) for _ in range(n)], dtype=object)
    return np.array([f"text {i}" for i in rng.integers(0, 50, n)], dtype=object)


def _effect(feature: Feature, values: np.ndarray, rng) -> np.ndarray:
    """This feature's share of the latent score (zero-mean, unit-ish scale)."""
    weight = rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.5)
    if feature.kind in (NUMERIC, BUCKETIZED):
        x = values.astype(np.float64)
        return weight * (x - x.mean()) / (x.std() or 1.0)
    # Ids and vocabulary values: a random effect per distinct value.
    distinct = sorted(set(values.tolist()), key=str)
    table = dict(zip(distinct, rng.normal(0, 1, len(distinct))))
    return weight * np.array([table[v] for v in values.tolist()])


def _label(user: UserCode, score: np.ndarray, label_feature: Feature) -> np.ndarray:
    task = user.task
    if isinstance(task, BinaryClassification):
        return (score > np.median(score)).astype(np.int64).astype(object)
    if isinstance(task, MulticlassClassification):
        edges = np.quantile(score, np.linspace(0, 1, task.num_classes + 1)[1:-1])
        ids = np.searchsorted(edges, score)
        if label_feature.dtype == BYTES:
            return np.array(task.class_names, dtype=object)[ids]
        return ids.astype(object)
    if isinstance(task, Regression):
        return np.round(20.0 + 3.0 * score, 3).astype(object)
    raise ValueError(f"no synthetic label for {task!r}")


def make_columns(user: UserCode, rows: int, seed: int = 0) -> Dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    label_feature = user.feature_by_name.get(user.task.label)
    if label_feature is None or label_feature.kind != LABEL_SOURCE:
        raise ValueError(f"synthetic data needs a LABEL_SOURCE feature named {user.task.label!r}")
    columns, score = {}, np.zeros(rows)
    for feature in user.features:
        if feature.kind == LABEL_SOURCE:
            continue
        columns[feature.name] = _raw_column(feature, rows, rng)
        if feature.is_model_input:
            score += _effect(feature, columns[feature.name], rng)
    score += rng.normal(0, 0.3, rows)  # some noise: the label is learnable, not trivial
    columns[label_feature.name] = _label(user, score, label_feature)
    return columns


def _cell(feature: Feature, value) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return str(value)


def write_csv(path, user: UserCode, rows: int, seed: int = 0) -> str:
    """A CSV of ``rows`` synthetic rows for ``user``'s FEATURES; ~4% of feature cells empty."""
    columns = make_columns(user, rows, seed)
    rng = np.random.default_rng(seed + 1)
    features = user.features
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([feature.name for feature in features])
        for i in range(rows):
            cells: List[str] = []
            for feature in features:
                missing = feature.kind != LABEL_SOURCE and rng.random() < MISSING_RATE
                cells.append("" if missing else _cell(feature, columns[feature.name][i]))
            writer.writerow(cells)
    return str(path)
