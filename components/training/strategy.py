"""Builds the tf.distribute strategy named in the config. The only place that branches on names
(the names and what each means: STRATEGIES in components/training/options.py)."""
from __future__ import annotations

import logging

from components.training.options import STRATEGIES

log = logging.getLogger(__name__)


class StrategyError(RuntimeError):
    pass


def validate(name: str) -> None:
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGIES)}")


def split_cpu(count: int) -> None:
    """Splits the physical CPU into ``count`` logical devices (so mirrored has replicas to mirror)."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError as e:
        if len(tf.config.list_logical_devices("CPU")) == count:
            return
        raise StrategyError(f"cannot split the CPU into {count} logical devices: TensorFlow has already "
                            f"initialized its devices in this process ({e})") from None


def build_strategy(name: str, *, cpu_devices: int = 0, cluster_resolver=None):
    import tensorflow as tf

    validate(name)
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as e:
            raise StrategyError(f"strategy tpu: no TPU is reachable from this machine ({e}); "
                                f"use auto, one_device or mirrored here") from None
        return tf.distribute.TPUStrategy(resolver)
    # Cluster strategies configure the runtime themselves: build them before anything (even a
    # device listing) initializes TensorFlow's context.
    if name == "multi_worker_mirrored":
        strategy = tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=tf.distribute.experimental.CommunicationOptions(
                implementation=tf.distribute.experimental.CommunicationImplementation.RING))
    elif name == "parameter_server":
        if cluster_resolver is None:
            raise StrategyError("strategy parameter_server needs a cluster (components/training/worker.py makes one)")
        strategy = tf.distribute.experimental.ParameterServerStrategy(cluster_resolver)
    else:
        if cpu_devices > 1:
            split_cpu(cpu_devices)
        gpus = tf.config.list_logical_devices("GPU")
        if name == "auto":
            name = "mirrored" if len(gpus) > 1 else "one_device"
        if name == "one_device":
            strategy = tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
        else:  # mirrored
            devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
            strategy = tf.distribute.MirroredStrategy(devices=devices)
    log.info("distribution strategy: %s (%s) with %d replica(s) in sync", name, type(strategy).__name__,
             strategy.num_replicas_in_sync)
    return strategy
