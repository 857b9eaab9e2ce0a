"""Builds the tf.distribute strategy named in the config. The only place that branches on names."""
from __future__ import annotations

import logging

log = logging.getLogger(__name__)

STRATEGY_NAMES = ("auto", "one_device", "mirrored")


def build_strategy(name: str):
    import tensorflow as tf

    if name not in STRATEGY_NAMES:
        raise ValueError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGY_NAMES)}")
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        name = "mirrored" if len(gpus) > 1 else "one_device"
    if name == "one_device":
        strategy = tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    else:
        strategy = tf.distribute.MirroredStrategy()
    log.info("distribution strategy: %s with %d replica(s)", type(strategy).__name__,
             strategy.num_replicas_in_sync)
    return strategy
