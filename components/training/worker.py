"""One training worker process, started by launcher.py: ``python -m components.training.worker --job ...``.

Builds the strategy in a fresh TensorFlow runtime (its role from TF_CONFIG, or an in-process
parameter-server cluster, or logical CPUs) and runs the Trainer's ``train_and_export``: the chief
(TensorFlow's rule: the ``chief`` task, or worker 0 in a cluster without one; every process without a
cluster) exports into the Trainer's serving model dir, the others into temporary dirs that are removed
(MultiWorkerMirroredStrategy needs every worker to take part in saving).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile

import components  # noqa: F401  (one Keras, before TensorFlow)
from components.training import strategy as strategy_lib
from components.training import trainer
from components.training.launcher import free_ports, replica_from_tf_config


def create_in_process_cluster(num_workers: int, num_ps: int):
    """Workers and parameter servers as in-process gRPC servers (TensorFlow's PS tutorial)."""
    import tensorflow as tf

    ports = free_ports(num_workers + num_ps)
    cluster = {"worker": [f"localhost:{p}" for p in ports[:num_workers]],
               "ps": [f"localhost:{p}" for p in ports[num_workers:]]}
    spec = tf.train.ClusterSpec(cluster)
    worker_config = tf.compat.v1.ConfigProto()
    if os.cpu_count() and os.cpu_count() < num_workers + 1:
        worker_config.inter_op_parallelism_threads = num_workers + 1
    for i in range(num_workers):
        tf.distribute.Server(spec, job_name="worker", task_index=i, config=worker_config, protocol="grpc")
    for i in range(num_ps):
        tf.distribute.Server(spec, job_name="ps", task_index=i, protocol="grpc")
    return tf.distribute.cluster_resolver.SimpleClusterResolver(spec, rpc_layer="grpc")


def worker_main(job_path: str, name: str) -> None:
    with open(job_path) as f:
        job = trainer.TrainerJob(**json.load(f))
    options = job.config.options
    resolver = None
    if options.strategy == "parameter_server":
        resolver = create_in_process_cluster(options.num_workers, options.num_parameter_servers)
    strategy = strategy_lib.build_strategy(options.strategy, cpu_devices=options.cpu_devices,
                                           cluster_resolver=resolver)
    replica = replica_from_tf_config(os.environ.get("TF_CONFIG"))
    if replica is None or replica.is_chief:
        trainer.train_and_export(job, strategy, job.serving_model_dir)
        return
    scratch = tempfile.mkdtemp(prefix=f"{name}-")
    try:
        trainer.train_and_export(job, strategy, os.path.join(scratch, "Format-Serving"), is_chief=False)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="one training worker (started by the Trainer)")
    parser.add_argument("--job", required=True)
    parser.add_argument("--name", default="worker-0", help="this worker's log name (its role: from TF_CONFIG)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    worker_main(args.job, args.name)


if __name__ == "__main__":
    main()
