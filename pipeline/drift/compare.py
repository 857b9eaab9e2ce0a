"""Skew and drift the TFDV way: statistics of a window of examples, compared with a reference's by the
comparators the schema holds (``skew_comparator`` against training data, ``drift_comparator`` against
another window), through ``tfdv.validate_statistics``.

    thresholded_schema(schema, overrides)            the schema with a comparator on every serving feature
    window_statistics(examples, schema)              TFDV statistics of serialized tf.Examples, in memory
    compare(current, reference, schema, skew)        -> [FeatureDrift] per compared feature, and the other anomalies

TFDV measures a categorical feature (a string, or an int the schema marks categorical) by the
L-infinity distance of its value shares, and a numeric one by the Jensen-Shannon divergence of its
histograms (L-infinity sees only string values: on a number it measures 0).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from tfxp.errors import TfxpError

SERVING = "SERVING"
L_INFTY, JSD = "L-infinity distance", "Jensen-Shannon divergence"
# Where `tfxp schema` starts (pipeline/schema_tool.py writes them; tune them on your data: measure the
# train split against the eval split first). A sample of a few hundred rows moves an L-infinity
# distance by ~0.05 and a 10-bucket JSD by ~0.01 by chance alone.
STARTING_THRESHOLDS = {L_INFTY: 0.1, JSD: 0.1}


class DriftConfigError(ValueError, TfxpError):
    """A threshold or a schema the check cannot use: one line naming it."""


@dataclass
class FeatureDrift:
    feature: str
    measure: str                 # L_INFTY or JSD
    value: Optional[float]       # None: not measured (the feature is missing on one side)
    threshold: float
    threshold_from: str          # "schema", "config" or "default" (the schema had no comparator)

    @property
    def crossed(self) -> bool:
        return self.value is not None and self.value > self.threshold


def is_categorical(feature) -> bool:
    from tensorflow_metadata.proto.v0 import schema_pb2

    return feature.type == schema_pb2.BYTES or (feature.HasField("int_domain") and feature.int_domain.is_categorical)


def _serving_features(schema) -> list:
    return [f for f in schema.feature if SERVING not in f.not_in_environment]


def _comparator(feature, skew: bool):
    return feature.skew_comparator if skew else feature.drift_comparator


def _has_threshold(comparator) -> bool:
    return comparator.HasField("infinity_norm") or comparator.HasField("jensen_shannon_divergence")


def _start(feature, comparator, threshold: Optional[float] = None) -> None:
    """TFDV's comparator for the feature's kind; a numeric feature's JSD over its quantiles histogram (equal-width
    buckets put a long tail's range into one bucket, and a window without the outliers then looks skewed)."""
    if is_categorical(feature):
        comparator.infinity_norm.threshold = threshold or STARTING_THRESHOLDS[L_INFTY]
    else:
        from tensorflow_metadata.proto.v0 import schema_pb2

        comparator.jensen_shannon_divergence.threshold = threshold or STARTING_THRESHOLDS[JSD]
        comparator.jensen_shannon_divergence.source.type = schema_pb2.HistogramSelection.QUANTILES


def add_starting_thresholds(schema, thresholds: Optional[Mapping[str, float]] = None) -> None:
    """Puts TFDV's skew and drift comparators on every serving feature that has none: ``thresholds[name]``
    (calibrate() measures them), else STARTING_THRESHOLDS."""
    for feature in _serving_features(schema):
        for skew in (True, False):
            if not _has_threshold(_comparator(feature, skew)):
                _start(feature, _comparator(feature, skew), (thresholds or {}).get(feature.name))


def calibrate(schema, first: Sequence[bytes], second: Sequence[bytes], margin: float = 2.0) -> Dict[str, float]:
    """Starting thresholds fitted to the data's own noise: each serving feature's distance between two samples
    of data that count as the same (the train and the eval split), times ``margin``, at least
    STARTING_THRESHOLDS. Measured, not assumed: a JSD over quantiles moves a lot by chance on a feature of
    few distinct values (a boundary on a tied value shifts a whole bucket), little on a continuous one."""
    ready = type(schema)()
    ready.CopyFrom(schema)
    add_starting_thresholds(ready)
    rows, _, _ = compare(window_statistics(first, ready), window_statistics(second, ready), ready, skew=True)
    found = {}
    for row in rows:
        measured = math.ceil((row.value or 0.0) * margin * 100) / 100
        found[row.feature] = min(1.0, max(STARTING_THRESHOLDS[row.measure], measured))
    return found


def thresholded_schema(schema, overrides: Mapping[str, float], schema_path: str, skew: bool) -> Tuple[object, Dict]:
    """(a copy of the schema ready to validate with, {feature: where its threshold came from}). A feature
    without a comparator gets the starting one; ``overrides`` (the config's drift.thresholds) replace the
    schema's threshold of the comparator in use. DriftConfigError when the schema has no SERVING
    environment or an override names a feature it does not serve."""
    copy = type(schema)()
    copy.CopyFrom(schema)
    if SERVING not in copy.default_environment:
        raise DriftConfigError(f"{schema_path}: the schema has no SERVING environment (default_environment), so the "
                               f"label would count as a missing feature; `tfxp schema` writes one")
    serving = {f.name: f for f in _serving_features(copy)}
    unknown = sorted(set(overrides) - set(serving))
    if unknown:
        raise DriftConfigError(f"drift.thresholds: {', '.join(map(repr, unknown))} is not a serving feature of "
                               f"{schema_path} (it has {', '.join(sorted(serving))})")
    origin = {}
    for name, feature in serving.items():
        comparator = _comparator(feature, skew)
        origin[name] = "schema" if _has_threshold(comparator) else "default"
        if origin[name] == "default":
            _start(feature, comparator)
        if name in overrides:
            origin[name] = "config"
            for measure in ("infinity_norm", "jensen_shannon_divergence"):
                if comparator.HasField(measure):
                    getattr(comparator, measure).threshold = overrides[name]
        comparator.ClearField("normalized_abs_difference")  # one measure per feature: the page shows one number
    return copy, origin


def window_statistics(examples: Sequence[bytes], schema):
    """TFDV statistics (a DatasetFeatureStatisticsList) of serialized tf.Examples, in this process (no Beam):
    decoded by tfx-bsl as TFX decodes them, summarized as StatisticsGen does (no schema in the options)."""
    import tensorflow_data_validation as tfdv
    from tensorflow_data_validation.statistics import stats_impl
    from tfx_bsl.coders import example_coder

    decoder = example_coder.ExamplesToRecordBatchDecoder(schema.SerializeToString())
    batch = decoder.DecodeBatch(list(examples))
    return stats_impl.generate_statistics_in_memory(batch, tfdv.StatsOptions())


def unknown_features(examples: Sequence[bytes], schema, where: str) -> None:
    """DriftInputError when the data has a feature the schema lacks (named, not guessed at)."""
    import tensorflow as tf

    from pipeline.drift.inputs import DriftInputError

    known = {f.name for f in schema.feature}
    for serialized in examples[:1000]:
        extra = sorted(set(tf.train.Example.FromString(serialized).features.feature) - known)
        if extra:
            raise DriftInputError(f"{where}: feature {extra[0]!r} is not in the schema (it has "
                                   f"{', '.join(sorted(known))}); add it to the schema or leave it out of the data")


def compare(current, reference, schema, skew: bool) -> Tuple[List[FeatureDrift], List[str], object]:
    """([FeatureDrift] for every feature with a comparator, [other anomalies of the current window, in one line
    each], the Anomalies proto). ``skew``: reference is the training data (skew_comparator), else an earlier
    window (drift_comparator)."""
    import tensorflow_data_validation as tfdv
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    kwargs = {"serving_statistics": reference} if skew else {"previous_statistics": reference}
    anomalies = tfdv.validate_statistics(current, schema, environment=SERVING, **kwargs)
    names = {"L_INFTY": L_INFTY, "JENSEN_SHANNON_DIVERGENCE": JSD}
    measured: Dict[str, Tuple[str, float]] = {}
    for info in anomalies.drift_skew_info:
        for m in (info.skew_measurements if skew else info.drift_measurements):
            kind = anomalies_pb2.DriftSkewInfo.Measurement.Type.Name(m.type)
            if kind in names:
                measured[".".join(info.path.step)] = (names[kind], m.value)
    rows = []
    for feature in _serving_features(schema):
        comparator = _comparator(feature, skew)
        measure = L_INFTY if comparator.HasField("infinity_norm") else JSD
        threshold = (comparator.infinity_norm if measure == L_INFTY else comparator.jensen_shannon_divergence).threshold
        value = measured.get(feature.name, (measure, None))[1]
        rows.append(FeatureDrift(feature.name, measure, value, threshold, ""))
    comparator_reasons = {"COMPARATOR_L_INFTY_HIGH", "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH",
                          "COMPARATOR_NORMALIZED_ABSOLUTE_DIFFERENCE_HIGH"}
    others = []
    for name, info in sorted(anomalies.anomaly_info.items()):
        reasons = [r for r in info.reason if anomalies_pb2.AnomalyInfo.Type.Name(r.type) not in comparator_reasons]
        for reason in reasons:
            others.append(f"{name}: {reason.short_description}: {reason.description}")
    return rows, others, anomalies
