"""The report's data section: rows per split and per-feature statistics (StatisticsGen's output, with a
histogram per feature) and the anomalies ExampleValidator found."""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Tuple

import pipeline.report.plots as plots
from pipeline.report.runs import Run
from tfxp import nodes

log = logging.getLogger(__name__)


def read_statistics(statistics_artifact) -> Dict[str, Any]:
    """{split: the default slice's DatasetFeatureStatistics} of a StatisticsGen output."""
    from tfx.components.statistics_gen import stats_artifact_utils
    from tfx.types import artifact_utils

    return {split: stats_artifact_utils.load_statistics(statistics_artifact, split).get_default_slice_or_die().proto()
            for split in artifact_utils.decode_split_names(statistics_artifact.split_names)}


def _common_stats(feature):
    kind = feature.WhichOneof("stats")
    return getattr(feature, kind).common_stats if kind in ("num_stats", "string_stats", "bytes_stats") else None


def _numeric_histogram(stats) -> Optional[plots.Histogram]:
    """(bucket edges, fraction of values per bucket) of the standard (equal-width) histogram."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    for histogram in stats.histograms:
        if histogram.type == statistics_pb2.Histogram.STANDARD and histogram.buckets:
            total = sum(b.sample_count for b in histogram.buckets) or 1.0
            return ([histogram.buckets[0].low_value] + [b.high_value for b in histogram.buckets],
                    [b.sample_count / total for b in histogram.buckets])
    return None


def _top_values(feature, limit: int) -> List[Tuple[str, float]]:
    stats = feature.string_stats
    buckets = [(b.label, b.sample_count) for b in stats.rank_histogram.buckets] or \
              [(v.value, v.frequency) for v in stats.top_values]
    return buckets[:limit]


def feature_plot(per_split: Dict[str, Any]) -> Optional[str]:
    """The tiny histogram of a feature ({split: its FeatureNameStatistics}), every split overlaid."""
    first = next(iter(per_split.values()))
    kind = first.WhichOneof("stats")
    if kind == "num_stats":
        return plots.histograms_plot([_numeric_histogram(feature.num_stats) for feature in per_split.values()])
    if kind == "string_stats":
        labels = [label for label, _ in _top_values(first, 10)]
        shares = []
        for feature in per_split.values():
            counts = dict(_top_values(feature, 1000))
            total = _common_stats(feature).num_non_missing or 1
            shares.append([counts.get(label, 0) / total for label in labels])
        return plots.top_values_plot(labels, shares)
    return None


def describe_feature(feature, num_examples: int) -> Dict[str, str]:
    common = _common_stats(feature)
    missing = (common.num_missing / num_examples) if common and num_examples else 0.0
    cells = {"missing": f"{missing:.1%}", "center": "", "spread": ""}
    kind = feature.WhichOneof("stats")
    if kind == "num_stats":
        s = feature.num_stats
        cells["center"] = f"{s.mean:.4g} ± {s.std_dev:.4g}"
        cells["spread"] = f"{s.min:.4g} … {s.median:.4g} … {s.max:.4g}"
    elif kind == "string_stats":
        cells["center"] = f"{feature.string_stats.unique:,} unique"
        total = common.num_non_missing or 1
        cells["spread"] = ", ".join(f"{label} ({count / total:.0%})" for label, count in _top_values(feature, 3))
    return cells


def _features(splits: Dict[str, Any]) -> List[Dict[str, Any]]:
    """A row per feature: its type, its plot and its statistics per split."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    features: Dict[str, Dict[str, Any]] = {}
    for split, stats in splits.items():
        for feature in stats.features:
            name = ".".join(feature.path.step) or feature.name
            features.setdefault(name, {})[split] = feature
    log.info("plotting %d feature histograms...", len(features))
    return [{
        "name": name,
        "type": statistics_pb2.FeatureNameStatistics.Type.Name(next(iter(per_split.values())).type),
        "plot": feature_plot(per_split),
        "splits": [dict(describe_feature(feature, splits[split].num_examples), split=split)
                   for split, feature in per_split.items()],
    } for name, per_split in features.items()]


def data_section(run: Run) -> Dict[str, Any]:
    from components.custom.anomalies_gate import read_anomalies

    section: Dict[str, Any] = {"note": run.missing(nodes.STATISTICS_GEN),
                               "anomalies_note": run.missing(nodes.EXAMPLE_VALIDATOR)}
    if section["anomalies_note"] is None:
        found = read_anomalies(run.artifact(nodes.EXAMPLE_VALIDATOR, "anomalies"))
        section["anomalies"] = [dict(problem, split=split) for split, problems in found.items() for problem in problems]
    if section["note"] is not None:
        return section
    log.info("reading the statistics...")
    splits = read_statistics(run.artifact(nodes.STATISTICS_GEN, "statistics"))
    section["splits"] = [{"name": name, "rows": stats.num_examples, "color": color}
                         for (name, stats), color in zip(splits.items(), plots.SPLIT_COLORS)]
    section["features"] = _features(splits)
    return section
