"""A feature list and a task inferred from a CSV: what `tfxp init` writes into a new features.py.

The rule, column by column (``FEW_VALUES`` is "few"):

* dtype: the first of INT64, FLOAT, BYTES that the data tool (``tfrecords.typed_column``) reads
  every non-empty cell of the column as: whole numbers (``3``, also ``3.0``) are INT64, other
  numbers FLOAT, anything else BYTES.
* kind:
  - integers with at most FEW_VALUES distinct values: CATEGORICAL when they look like ids (none
    negative, the largest below MAX_CATEGORICAL_ID; num_buckets = the largest + 1, so every value
    seen is an id), otherwise (codes such as 1000, 1007, or years) VOCABULARY;
  - more integers, and floats: NUMERIC;
  - strings: VOCABULARY (vocab_size = their number), UNUSED when nearly every row has its own
    value (more than FEW_VALUES distinct values, in more than half the rows: an id or free text);
  - the same value in every row: UNUSED; no value in any row, or a name that is not a Python
    identifier: left out of FEATURES (a commented-out line says why).
* the label column is LABEL_SOURCE, and decides the TASK: two distinct values ->
  BinaryClassification (the values in sorted order are 0 and 1), 3 to FEW_VALUES integers or
  strings -> MulticlassClassification (class names: the values in sorted order), otherwise (more
  integers, or any non-whole numbers) Regression. Every row must have a label.
* SLICE_FEATURES: the categorical or vocabulary feature with the fewest distinct values (at most
  FEW_VALUES), or none.

Bad input raises ``tfrecords.DataError`` naming the file, and the line or column.
"""
from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence, Tuple

from components.core.feature import (BYTES, CATEGORICAL, FLOAT, INT64, LABEL_SOURCE, NUMERIC, UNUSED, VOCABULARY,
                                     Feature, check_feature_list)
from components.core.task import BinaryClassification, MulticlassClassification, Regression, Task
from data import tfrecords

FEW_VALUES = 24            # "few" distinct values: the hours of a day fit
MAX_CATEGORICAL_ID = 100   # few integers below this are ids (CATEGORICAL); others are codes (VOCABULARY)
DISTINCT_LIMIT = 10_000    # distinct values tracked per column; beyond it a column has "many"


@dataclasses.dataclass(frozen=True)
class InferredColumn:
    name: str
    feature: Optional[Feature]  # None: left out of FEATURES
    reason: str                 # the evidence, in words: a comment beside its line in features.py
    distinct: Optional[int]     # distinct non-empty values; None: more than DISTINCT_LIMIT


@dataclasses.dataclass(frozen=True)
class Inference:
    csv_path: str
    rows: int
    columns: Tuple[InferredColumn, ...]
    task: Task
    label_values: Tuple[str, ...]  # classification: the label column's values in class-id order
    slice_features: Tuple[str, ...]

    @property
    def features(self) -> List[Feature]:
        return [c.feature for c in self.columns if c.feature is not None]


@dataclasses.dataclass
class _Profile:
    """What one pass over a column shows."""
    name: str
    present: int = 0              # non-empty cells
    first_empty_row: Optional[int] = None
    is_int: bool = True           # every value so far reads as INT64 ...
    is_float: bool = True         # ... as FLOAT
    texts: Optional[set] = dataclasses.field(default_factory=set)  # distinct cell texts; None: too many

    @property
    def dtype(self) -> str:
        return INT64 if self.is_int else FLOAT if self.is_float else BYTES

    def values(self) -> Optional[list]:
        """The distinct values as the data tool stores them, sorted (None: too many)."""
        if self.texts is None:
            return None
        if self.dtype == BYTES:
            return sorted(self.texts)
        probe = Feature(self.name, self.dtype, UNUSED)
        return sorted({tfrecords.parse_value(probe, text, "") for text in self.texts})


def _reads_as(dtype: str, name: str, column) -> bool:
    try:
        tfrecords.typed_column(Feature(name, dtype, UNUSED), column, lambda row: "", 0)
        return True
    except tfrecords.DataError:
        return False


def _observe(profile: _Profile, column, first_row: int) -> None:
    import pyarrow.compute as pc

    profile.present += len(column) - column.null_count
    if column.null_count and profile.first_empty_row is None:
        profile.first_empty_row = first_row + pc.index(pc.is_null(column), True).as_py()
    if profile.is_int and not _reads_as(INT64, profile.name, column):
        profile.is_int = False
    if not profile.is_int and profile.is_float and not _reads_as(FLOAT, profile.name, column):
        profile.is_float = False
    if profile.texts is not None:
        profile.texts.update(v for v in pc.unique(column).to_pylist() if v is not None)
        if len(profile.texts) > DISTINCT_LIMIT:
            profile.texts = None


def _read_profiles(csv_path: str, label: str):
    source = tfrecords.csv_source(csv_path, [])
    header = source.header
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise tfrecords.DataError(f"{csv_path}, line 1 (header): column name(s) {', '.join(map(repr, repeated))} "
                                  f"appear more than once; every column needs its own name")
    if label not in header:
        raise tfrecords.DataError(f"{csv_path}, line 1 (header): no label column {label!r}; the header has "
                                  f"{', '.join(header)}")
    if not label.isidentifier():
        raise tfrecords.DataError(f"{csv_path}, line 1 (header): the label column {label!r} must be named like a "
                                  f"Python identifier (letters, digits, '_'): rename it in the CSV")
    profiles = [_Profile(name) for name in header]
    rows = 0
    for batch in source.batches:
        for index, profile in enumerate(profiles):
            _observe(profile, batch.column(index), rows)
        rows += batch.num_rows
    if rows == 0:
        raise tfrecords.DataError(f"{csv_path}: no data rows after the header line")
    return source, profiles, rows


def _counted(n: Optional[int], what: str) -> str:
    return f"more than {DISTINCT_LIMIT:,} {what}" if n is None else f"{n} distinct {what}"


def _feature_column(profile: _Profile) -> InferredColumn:
    """A feature's dtype and kind, by the rule in the module docstring."""
    name, dtype = profile.name, profile.dtype
    if not name.isidentifier():
        return InferredColumn(name, None, "left out: its name is not a Python identifier (rename the column to "
                                          "use it)", None)
    if profile.present == 0:
        return InferredColumn(name, None, "left out: empty in every row (tfxp schema needs every feature to "
                                          "occur)", 0)
    values = profile.values()
    distinct = None if values is None else len(values)
    if distinct == 1:
        return InferredColumn(name, Feature(name, dtype, UNUSED), f"the same value ({values[0]!r}) in every "
                                                                   f"non-empty cell: nothing to learn from", 1)
    few = distinct is not None and distinct <= FEW_VALUES
    if dtype == INT64 and few:
        if values[0] >= 0 and values[-1] < MAX_CATEGORICAL_ID:
            return InferredColumn(name, Feature(name, INT64, CATEGORICAL, num_buckets=values[-1] + 1),
                                  f"{distinct} distinct integers from {values[0]} to {values[-1]}: ids", distinct)
        return InferredColumn(name, Feature(name, INT64, VOCABULARY, vocab_size=distinct),
                              f"{distinct} distinct integers from {values[0]} to {values[-1]}: codes", distinct)
    if dtype in (INT64, FLOAT):
        what = "integers" if dtype == INT64 else "numbers"
        return InferredColumn(name, Feature(name, dtype, NUMERIC), _counted(distinct, what), distinct)
    if distinct is None or (not few and distinct > profile.present / 2):
        return InferredColumn(name, Feature(name, BYTES, UNUSED),
                              f"{_counted(distinct, 'strings')} in {profile.present} rows: an id or free text, "
                              f"not categories", distinct)
    return InferredColumn(name, Feature(name, BYTES, VOCABULARY, vocab_size=distinct),
                          _counted(distinct, "strings"), distinct)


def _label_column(profile: _Profile, rows: int, source) -> Tuple[InferredColumn, Task, Tuple[str, ...]]:
    """The label column's dtype and the task it implies, by the rule in the module docstring."""
    name, dtype = profile.name, profile.dtype
    if profile.present < rows:
        raise tfrecords.DataError(
            f"{source.where(profile.first_empty_row)}: the label column {name!r} is empty; every row needs a label "
            f"({rows - profile.present} of {rows} rows have none): drop or fill those rows")
    values = profile.values()
    distinct = None if values is None else len(values)
    if distinct == 1:
        raise tfrecords.DataError(f"{source.name}: the label column {name!r} has one value ({values[0]!r}) in every "
                                  f"row: there is nothing to predict")
    feature = Feature(name, dtype, LABEL_SOURCE)
    names = tuple(str(v) if dtype == INT64 else v for v in values or ())
    if distinct == 2 and dtype != FLOAT:
        reason = f"the label: 2 values, {names[0]!r} -> 0 and {names[1]!r} -> 1"
        return InferredColumn(name, feature, reason, 2), BinaryClassification(label=name), names
    if dtype != FLOAT and distinct is not None and distinct <= FEW_VALUES:
        task = MulticlassClassification(label=name, class_names=names)
        return InferredColumn(name, feature, f"the label: {distinct} classes", distinct), task, names
    if dtype == BYTES:
        raise tfrecords.DataError(
            f"{source.name}: the label column {name!r} holds {_counted(distinct, 'strings')}: too many to be classes "
            f"(at most {FEW_VALUES}), and not numbers to regress on")
    what = "integers" if dtype == INT64 else "numbers"
    return InferredColumn(name, feature, f"the label: {_counted(distinct, what)}", distinct), \
        Regression(label=name), ()


def _slice_features(columns: Sequence[InferredColumn]) -> Tuple[str, ...]:
    candidates = [c for c in columns if c.feature is not None and c.feature.kind in (CATEGORICAL, VOCABULARY)
                  and c.distinct is not None and c.distinct <= FEW_VALUES]
    return (min(candidates, key=lambda c: c.distinct).name,) if candidates else ()


def infer(csv_path: str, label: str) -> Inference:
    """Reads ``csv_path`` once and infers its feature list and task; ``label`` names the label column."""
    source, profiles, rows = _read_profiles(csv_path, label)
    columns: List[InferredColumn] = []
    task, label_values = None, ()
    for profile in profiles:
        if profile.name == label:
            column, task, label_values = _label_column(profile, rows, source)
        else:
            column = _feature_column(profile)
        columns.append(column)
    features = [c.feature for c in columns if c.feature is not None]
    try:
        check_feature_list(features, label_key=task.label_key)
    except ValueError as e:
        raise tfrecords.DataError(f"{csv_path}: the inferred feature list cannot be used: {e}") from None
    return Inference(csv_path, rows, tuple(columns), task, tuple(label_values), _slice_features(columns))

