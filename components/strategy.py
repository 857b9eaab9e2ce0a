"""Builds the tf.distribute strategy named in the config. The only place that branches on names.

    auto                   mirrored over all GPUs when there are several, one_device otherwise
    one_device             one GPU, or the CPU
    mirrored               synchronous data parallelism over this machine's GPUs, or over N
                           logical CPU devices (cpu_devices: N) on a CPU-only machine
    multi_worker_mirrored  synchronous data parallelism across worker processes/machines;
                           each worker learns its role from TF_CONFIG
    parameter_server       asynchronous: a coordinator dispatches steps to workers, variables
                           live on parameter servers (here: an in-process cluster)
    tpu                    only where a TPU cluster resolver finds a TPU
"""
from __future__ import annotations

import logging
from typing import Any, Dict

log = logging.getLogger(__name__)

STRATEGY_NAMES = ("auto", "one_device", "mirrored", "multi_worker_mirrored", "parameter_server", "tpu")


class StrategyError(RuntimeError):
    pass


def validate(name: str) -> None:
    if name not in STRATEGY_NAMES:
        raise ValueError(f"unknown strategy {name!r}; expected one of {', '.join(STRATEGY_NAMES)}")


def needs_own_processes(config: Dict[str, Any]) -> bool:
    """True when training must run in fresh worker processes, not in the pipeline's process:
    logical CPU devices and cluster roles are fixed before TensorFlow initializes its runtime,
    which the pipeline's earlier components have already done."""
    return (config["strategy"] in ("multi_worker_mirrored", "parameter_server")
            or int(config.get("cpu_devices", 0)) > 1)


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
            raise StrategyError("strategy parameter_server needs a cluster (components/distributed.py makes one)")
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
