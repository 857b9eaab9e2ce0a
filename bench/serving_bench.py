"""`tfxp serve` under load, side by side in one run, on the pipeline's pushed model (after `make run`).

Cells: protocol (REST with one requests.Session per client, gRPC with one channel and pre-built
PredictRequests per client) x examples per request (1, 32) x concurrent clients (1, 8, 32), on one
server at a time: batching off, batching with the batch scheduler, and with TensorFlow's
BatchFunction op (`--batching_implementation=tf_op`). The floor is the same signature called in
this process, single thread. Per cell: p50/p99 latency and requests/s over a fixed request count
after a warm-up. Then request logging's cost: 32 batch-1 clients against two servers alive at once,
batching off, one logging every request (logging_config at sampling 1.0), in alternating rounds.
Writes bench/results/serving_bench.json.

    python -m bench.serving_bench [--quick] [--requests N] [--model-dir runs/serving_model/<name>/<version>]
"""
import argparse
import base64
import json
import math
import multiprocessing
import os
import re
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor

from bench.common import figure, write_results
from pipeline.config import load_config
from bench.model_server import ModelServerProcess
from serving.options import METRICS_PATH
from tfxp import contract

BATCH_SIZES = (1, 32)
CLIENTS = (1, 8, 32)
REQUESTS = {"full": 300, "quick": 50}  # measured requests per cell, shared by its clients
WARMUP = {"full": 5, "quick": 2}  # requests per client before the measurement
DISTINCT_BATCHES = 8  # each client cycles through this many different requests of real eval examples
THREADS_PER_PROCESS = 8  # clients beyond this run in more client processes (see CLIENT_MODE)
CLIENT_MODE = ("threads, at most 8 per client process (1 process for 1 and 8 clients, 4 for 32): with 32 client "
               "threads in one process, the REST clients used ~0.8 of the one core a GIL allows and gRPC p99 "
               "rose to 70-270 ms (82-86 ms over 4 processes) from GIL hand-offs inside the client; "
               "client_cpu_cores per cell is the clients' share of the 2 cores")
BATCHING = {"max_batch_size": 32, "batch_timeout_micros": 0, "num_batch_threads": 2, "max_enqueued_batches": 100}
BATCHING_WHY = ("max_batch_size 32: the largest request; num_batch_threads 2: the cores; batch_timeout_micros 0: "
                "with the default --grpc_max_threads (4 x cores = 8) at most 8 gRPC requests are in the server, so "
                "a batch of batch-1 requests never reaches 32 and any timeout is pure wait (tried 1000 us: fewer "
                "req/s at 32 clients, 586-610 vs 648-699, and +1.6 ms p50 at 1 client); at 0, requests that "
                "arrive while both batch threads run are batched together")
SERVER_FLAGS = ["--access_log="]  # no access log line per request (TF Serving writes none)
SERVERS = ("off", "scheduler", "tf_op")  # batching off, or on with this --batching_implementation
TARGETS = {"grpc_over_in_process_p50_ms_max": 1.0, "batched_over_unbatched_rps_min": 3.0,
           "logging_over_off_p50_max": 1.10}
LOGGING_CLIENTS = 32
LOGGING_REQUESTS = {"full": 2000, "quick": 320}  # per cell: 10 per client even in a quick run (p50 of 32 clients)
LOGGING_ROUNDS = {"full": 5, "quick": 4}  # off and logging measured in turn, order swapped each round; medians


# -- client processes -----------------------------------------------------------------------------

def _connect(protocol: str, target: str, payloads: list):
    """One client's connection: (send(i) -> rows answered, close)."""
    if protocol == "grpc":
        import grpc
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

        channel = grpc.insecure_channel(target)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        built = [predict_pb2.PredictRequest.FromString(p) for p in payloads]

        def send(i):
            response = stub.Predict(built[i % len(built)], timeout=120)
            return next(iter(response.outputs.values())).tensor_shape.dim[0].size
        return send, channel.close
    import requests

    session = requests.Session()

    def send(i):
        reply = session.post(target, data=payloads[i % len(payloads)], headers={"Content-Type": "application/json"},
                             timeout=120)
        reply.raise_for_status()
        return len(reply.json()["predictions"])
    return send, session.close


def _client_process(protocol, target, payloads, batch, threads, per_thread, warmup, start_together):
    """``threads`` clients in this process: warm up, wait for every client process, then each sends
    ``per_thread`` requests. Returns (latencies s, first start, last end, CPU s of this process)."""
    cpu = {}

    def all_ready():
        start_together.wait(timeout=300)
        cpu["start"] = time.process_time()

    ready = threading.Barrier(threads, action=all_ready, timeout=300)
    results = []

    def client(offset):
        send, close = _connect(protocol, target, payloads)
        try:
            for i in range(warmup):
                rows = send(offset + i)
                if rows != batch:
                    raise RuntimeError(f"{protocol}: {rows} rows answered for {batch} examples")
            ready.wait()
            latencies, start = [], time.monotonic()
            for i in range(per_thread):
                t = time.perf_counter()
                send(offset + i)
                latencies.append(time.perf_counter() - t)
            results.append((latencies, start, time.monotonic()))
        except BaseException:
            ready.abort()  # the other clients stop waiting (BrokenBarrierError)
            raise
        finally:
            close()

    pool = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if len(results) != threads:
        start_together.abort()
        raise RuntimeError(f"{threads - len(results)} {protocol} client(s) failed (see above)")
    return ([s for r in results for s in r[0]], min(r[1] for r in results), max(r[2] for r in results),
            time.process_time() - cpu["start"])


def _import_clients(start_together):
    """Starts one client process: the imports happen here, before anything is measured."""
    import grpc  # noqa: F401
    import requests  # noqa: F401
    from tensorflow_serving.apis import prediction_service_pb2_grpc  # noqa: F401

    start_together.wait(timeout=300)


class LoadGenerator:
    """Client processes (spawned once, kept for every cell) running client threads."""

    def __init__(self, max_clients: int):
        context = multiprocessing.get_context("spawn")
        self.max_processes = math.ceil(max_clients / THREADS_PER_PROCESS)
        self.manager = context.Manager()
        self.pool = ProcessPoolExecutor(self.max_processes, mp_context=context)
        barrier = self.manager.Barrier(self.max_processes)
        for future in [self.pool.submit(_import_clients, barrier) for _ in range(self.max_processes)]:
            future.result()

    def run(self, protocol, target, payloads, batch, clients, requests, warmup) -> dict:
        processes = math.ceil(clients / THREADS_PER_PROCESS)
        per_thread = math.ceil(requests / clients)
        barrier = self.manager.Barrier(processes)
        futures = [self.pool.submit(_client_process, protocol, target, payloads, batch, len(share), per_thread,
                                    warmup, barrier)
                   for share in (range(clients)[p::processes] for p in range(processes))]
        parts = [f.result() for f in futures]
        latencies = sorted(s for part in parts for s in part[0])
        seconds = max(p[2] for p in parts) - min(p[1] for p in parts)
        return dict(_summary(latencies, seconds, batch), client_processes=processes,
                    client_cpu_cores=sum(p[3] for p in parts) / seconds)

    def close(self):
        self.pool.shutdown()
        self.manager.shutdown()


def _summary(latencies, seconds: float, batch: int) -> dict:
    import numpy as np

    ms = np.array(latencies) * 1000
    return {"requests": len(latencies), "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "requests_per_second": len(latencies) / seconds, "examples_per_second": len(latencies) * batch / seconds}


# -- requests, servers, the floor -----------------------------------------------------------------

def _batches(examples, batch):
    return [[examples[(start * batch + i) % len(examples)] for i in range(batch)] for start in range(DISTINCT_BATCHES)]


def build_payloads(examples, model_name: str) -> dict:
    """{(protocol, batch): [serialized PredictRequest or REST JSON body]}."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    payloads = {}
    for batch in BATCH_SIZES:
        grpc_requests, bodies = [], []
        for rows in _batches(examples, batch):
            request = predict_pb2.PredictRequest()
            request.model_spec.name, request.model_spec.signature_name = model_name, contract.SIGNATURE
            request.inputs[contract.EXAMPLES].CopyFrom(tf.make_tensor_proto(rows, dtype=tf.string))
            grpc_requests.append(request.SerializeToString())
            bodies.append(json.dumps({"instances": [{"b64": base64.b64encode(e).decode()} for e in rows]}).encode())
        payloads["grpc", batch], payloads["rest", batch] = grpc_requests, bodies
    return payloads


def in_process(model_dir: str, examples, requests: int, warmup: int) -> dict:
    import tensorflow as tf

    serve = tf.saved_model.load(model_dir).signatures[contract.SIGNATURE]
    floor = {}
    for batch in BATCH_SIZES:
        batches = _batches(examples, batch)
        for i in range(warmup):
            serve(examples=tf.constant(batches[i % len(batches)]))
        latencies, start = [], time.perf_counter()
        for i in range(requests):
            t = time.perf_counter()
            serve(examples=tf.constant(batches[i % len(batches)]))
            latencies.append(time.perf_counter() - t)
        floor[batch] = _summary(sorted(latencies), time.perf_counter() - start, batch)
    return floor


def in_process_batching(model_dir: str, examples, threads: int = 32, per_thread: int = 100) -> dict:
    """Batch-1 calls from ``threads`` threads into serving's own Signature, with no transport in
    front: unbatched, through the batch scheduler, through TensorFlow's BatchFunction op."""
    import numpy as np

    from serving.servable import ServerBatching, Servable

    results = {}
    for name in ("off",) + SERVERS[1:]:
        batching = None if name == "off" else ServerBatching(implementation=name, **{
            k: v for k, v in BATCHING.items() if k != "batch_timeout_micros"}, batch_timeout_micros=1000)
        signature = Servable("bench", 1, model_dir, batching).signature("")
        rows = [np.array([e], dtype=object) for e in examples]

        def client(offset):
            for i in range(per_thread):
                signature.run({contract.EXAMPLES: rows[(offset + i) % len(rows)]})
        client(0)
        workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
        start = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        results[name] = threads * per_thread / (time.perf_counter() - start)
    return {"threads": threads, "calls_per_thread": per_thread, "batch_timeout_micros": 1000,
            "calls_per_second": results,
            "speedup": {k: v / results["off"] for k, v in results.items() if k != "off"}}


def write_model_config(path: str, model_name: str, model_dir: str, logging_config: str = "") -> str:
    """A models.config serving the model dir's version only (a specific-version policy)."""
    version = os.path.basename(os.path.normpath(model_dir))
    with open(path, "w") as f:
        f.write(f'model_config_list {{ config {{ name: "{model_name}" base_path: '
                f'"{os.path.dirname(os.path.abspath(model_dir))}" model_platform: "tensorflow" '
                f"model_version_policy {{ specific {{ versions: {version} }} }} {logging_config}}} }}\n")
    return path


def server_configs(tmp: str, model_name: str, model_dir: str) -> dict:
    """Flags per server: the model dir's version only, batching or not."""
    config = write_model_config(os.path.join(tmp, "models.config"), model_name, model_dir)
    batching = os.path.join(tmp, "batching.config")
    with open(batching, "w") as f:
        f.write(" ".join(f"{k} {{ value: {v} }}" for k, v in BATCHING.items()) + "\n")
    base = [f"--model_config_file={config}", *SERVER_FLAGS]
    on = ["--enable_batching", f"--batching_parameters_file={batching}"]
    return {name: base + (on + [f"--batching_implementation={name}"] if name != "off" else []) for name in SERVERS}


def request_logging_overhead(load, tmp: str, model_name: str, model_dir: str, payloads: dict, requests: int,
                             warmup: int, rounds: int) -> dict:
    """32 batch-1 clients on a server without request logging and on one logging every request (TF Serving's
    logging_config, sampling 1.0, the default bounds), both alive at once, measured in turn (the order swapped
    each round); per protocol the medians of the rounds and of the per-round ratios (the machine is shared: a
    ratio of two cells measured one after the other drifts least), and what the logging server counted and wrote."""
    import statistics

    import requests as http
    from tfxp import request_logs

    prefix = os.path.join(tmp, "request_logs", model_name)
    logged = write_model_config(os.path.join(tmp, "models_logged.config"), model_name, model_dir,
                                f'logging_config {{ sampling_config {{ sampling_rate: 1.0 }} log_collector_config '
                                f'{{ type: "tfrecord" filename_prefix: "{prefix}" }} }} ')
    monitoring = os.path.join(tmp, "monitoring.config")
    with open(monitoring, "w") as f:
        f.write(f'prometheus_config {{ enable: true path: "{METRICS_PATH}" }}\n')
    flags = {"off": server_configs(tmp, model_name, model_dir)["off"],
             "logging": [f"--model_config_file={logged}", f"--monitoring_config_file={monitoring}", *SERVER_FLAGS]}
    runs = {(server, protocol): [] for server in flags for protocol in ("grpc", "rest")}
    with ModelServerProcess(flags["off"], tmp, wait_for_model=model_name) as off, \
            ModelServerProcess(flags["logging"], tmp, wait_for_model=model_name) as on:
        servers = {"off": off, "logging": on}
        for round_ in range(rounds):
            for protocol in ("grpc", "rest"):
                for server in (("off", "logging") if round_ % 2 == 0 else ("logging", "off")):
                    process = servers[server]
                    url = process.grpc_target if protocol == "grpc" else f"{process.url}/v1/models/{model_name}:predict"
                    runs[server, protocol].append(_with_server_cpu(process, lambda: load.run(
                        protocol, url, payloads[protocol, 1], 1, LOGGING_CLIENTS, requests, warmup),
                        LOGGING_CLIENTS * (math.ceil(requests / LOGGING_CLIENTS) + warmup)))
        page = http.get(on.url + METRICS_PATH, timeout=30).text
    counts = {status: sum(float(v) for v in re.findall(
        rf':tensorflow:serving:request_log_count{{[^}}]*status_code="{status}"[^}}]*}} (\S+)', page))
        for status in ("OK", "RESOURCE_EXHAUSTED", "INTERNAL")}
    written = sum(1 for _ in request_logs.read_records(request_logs.log_files(prefix)))  # after SIGTERM: all files
    cells, measured = [], {}
    for (server, protocol), results in runs.items():
        cells.append({"server": server, "protocol": protocol, "batch": 1, "clients": LOGGING_CLIENTS,
                      "p50_ms": statistics.median(r["p50_ms"] for r in results),
                      "requests_per_second": statistics.median(r["requests_per_second"] for r in results),
                      "server_cpu_ms_per_request": statistics.median(r["server_cpu_ms_per_request"] for r in results),
                      "rounds": results})
    cell = {(c["server"], c["protocol"]): c for c in cells}
    for protocol in ("grpc", "rest"):
        off_cell, on_cell = cell["off", protocol], cell["logging", protocol]
        pairs = list(zip(runs["logging", protocol], runs["off", protocol]))  # measured one right after the other
        ratio = statistics.median(on["p50_ms"] / off["p50_ms"] for on, off in pairs)
        measured[protocol] = {"off_p50_ms": off_cell["p50_ms"], "logging_p50_ms": on_cell["p50_ms"], "p50_ratio": ratio,
                              "off_rps": off_cell["requests_per_second"], "logging_rps": on_cell["requests_per_second"],
                              "rps_ratio": statistics.median(on["requests_per_second"] / off["requests_per_second"]
                                                             for on, off in pairs),
                              "off_server_cpu_ms": off_cell["server_cpu_ms_per_request"],
                              "logging_server_cpu_ms": on_cell["server_cpu_ms_per_request"],
                              "pass": ratio <= TARGETS["logging_over_off_p50_max"]}
    return {"clients": LOGGING_CLIENTS, "requests_per_cell": requests, "rounds": rounds, "server_flags": flags,
            "request_log_count": counts, "records_written": written, "cells": cells, "measured": measured}


def _with_server_cpu(process, run, requests: int) -> dict:
    """``run()``'s result with the server process's CPU time (user + system, all threads) per request."""
    import psutil

    server = psutil.Process(process.process.pid)
    before = sum(server.cpu_times()[:2])
    result = run()
    return dict(result, server_cpu_ms_per_request=(sum(server.cpu_times()[:2]) - before) * 1000 / requests)


def print_logging_report(overhead: dict) -> None:
    for protocol, m in overhead["measured"].items():
        print(f"(4) request logging at 1.0 / off, {protocol:<4} 32 batch-1 clients: p50 {m['logging_p50_ms']:.2f} / "
              f"{m['off_p50_ms']:.2f} ms = {m['p50_ratio']:.2f}x (<= {TARGETS['logging_over_off_p50_max']}: "
              f"{'PASS' if m['pass'] else 'FAIL'}); req/s {m['logging_rps']:.0f} / {m['off_rps']:.0f} = "
              f"{m['rps_ratio']:.2f}x; server CPU per request {m['logging_server_cpu_ms']:.2f} / "
              f"{m['off_server_cpu_ms']:.2f} ms")
    print(f"    ratios: medians of {overhead['rounds']} rounds of {overhead['requests_per_cell']} requests, each the "
          f"logging cell over the off cell measured next to it; the logging "
          f"server's request_log_count {overhead['request_log_count']}, records in its files "
          f"{overhead['records_written']}")


def logging_figures(overhead: dict) -> list:
    found = []
    for protocol, m in overhead["measured"].items():
        found.append(figure(f"p50 with request logging at 1.0 / off, 32 batch-1 clients, {protocol}", m["p50_ratio"],
                            "x", TARGETS["logging_over_off_p50_max"], "lower"))
        found.append(figure(f"req/s with request logging at 1.0 / off, 32 batch-1 clients, {protocol}", m["rps_ratio"],
                            "x", better="higher"))
    return found


def default_model_dir(cfg) -> str:
    from serving import predict

    found = predict.latest_version(cfg.serving_model_dir)
    if found is None:
        raise SystemExit(f"no pushed model under {cfg.serving_model_dir}: run `make run` first (or pass --model-dir)")
    return found


# -- targets and the table -------------------------------------------------------------------------

def evaluate(cells: list, floor: dict) -> dict:
    cell = {(c["server"], c["protocol"], c["batch"], c["clients"]): c for c in cells}
    grpc_p50, floor_p50 = cell["off", "grpc", 1, 1]["p50_ms"], floor[1]["p50_ms"]
    targets = {"1_grpc_p50_within_1ms_of_in_process": {
        "grpc_p50_ms": grpc_p50, "in_process_p50_ms": floor_p50, "overhead_ms": grpc_p50 - floor_p50,
        "pass": grpc_p50 - floor_p50 <= TARGETS["grpc_over_in_process_p50_ms_max"]}}
    for server in ("scheduler", "tf_op"):
        for protocol in ("grpc", "rest"):
            batched, unbatched = (cell[s, protocol, 1, max(CLIENTS)]["requests_per_second"] for s in (server, "off"))
            ratio = batched / unbatched
            targets[f"2_{server}_{protocol}_rps_ratio_32_clients_batch_1"] = {
                "batched_rps": batched, "unbatched_rps": unbatched, "ratio": ratio,
                "pass": ratio >= TARGETS["batched_over_unbatched_rps_min"]}
    rest, grpc = cell["off", "rest", 1, 1]["p50_ms"], grpc_p50
    targets["3_rest_over_grpc_p50_batch_1_1_client"] = {"rest_p50_ms": rest, "grpc_p50_ms": grpc, "ratio": rest / grpc}
    return targets


def figures_of(targets: dict, batching_alone: dict) -> list:
    one = targets["1_grpc_p50_within_1ms_of_in_process"]
    found = [figure("gRPC p50 over the in-process call, batch 1, 1 client", one["overhead_ms"], "ms",
                    TARGETS["grpc_over_in_process_p50_ms_max"], "lower")]
    for server in ("scheduler", "tf_op"):
        for protocol in ("grpc", "rest"):
            found.append(figure(f"req/s at 32 batch-1 clients, batching {server} / off, {protocol}",
                                targets[f"2_{server}_{protocol}_rps_ratio_32_clients_batch_1"]["ratio"], "x",
                                TARGETS["batched_over_unbatched_rps_min"], "higher"))
    found.append(figure("p50 REST / gRPC, batch 1, 1 client",
                        targets["3_rest_over_grpc_p50_batch_1_1_client"]["ratio"], "x"))
    for name, speedup in batching_alone["speedup"].items():
        found.append(figure(f"in-process calls/s at 32 batch-1 threads, batching {name} / off", speedup, "x",
                            better="higher"))
    return found


def print_report(cells: list, floor: dict, targets: dict) -> None:
    print(f"\n{'server':<11}{'protocol':<10}{'batch':>5}{'clients':>8}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>9}"
          f"{'ex/s':>9}{'cli cpu':>8}")
    rows = [dict(server="in-process", protocol="-", batch=b, clients=1, client_cpu_cores=None, **f)
            for b, f in floor.items()] + cells
    for r in rows:
        cpu = f"{r['client_cpu_cores']:>8.2f}" if r["client_cpu_cores"] is not None else f"{'-':>8}"
        print(f"{r['server']:<11}{r['protocol']:<10}{r['batch']:>5}{r['clients']:>8}{r['p50_ms']:>9.2f}"
              f"{r['p99_ms']:>9.2f}{r['requests_per_second']:>9.0f}{r['examples_per_second']:>9.0f}{cpu}")
    one = targets["1_grpc_p50_within_1ms_of_in_process"]
    print(f"\n(1) gRPC p50, batch 1, 1 client, batching off <= in-process p50 + 1 ms: {one['grpc_p50_ms']:.2f} vs "
          f"{one['in_process_p50_ms']:.2f} ms (+{one['overhead_ms']:.2f}): {'PASS' if one['pass'] else 'FAIL'}")
    for server in ("scheduler", "tf_op"):
        for protocol in ("grpc", "rest"):
            t = targets[f"2_{server}_{protocol}_rps_ratio_32_clients_batch_1"]
            print(f"(2) batching {server:<9} {protocol:<4} req/s at 32 batch-1 clients >= 3x off: "
                  f"{t['batched_rps']:.0f} vs {t['unbatched_rps']:.0f} = {t['ratio']:.2f}x: "
                  f"{'PASS' if t['pass'] else 'FAIL'}")
    three = targets["3_rest_over_grpc_p50_batch_1_1_client"]
    print(f"(3) REST/gRPC p50, batch 1, 1 client: {three['rest_p50_ms']:.2f} / {three['grpc_p50_ms']:.2f} ms = "
          f"{three['ratio']:.2f}x")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"{REQUESTS['quick']} requests per cell (a smoke run)")
    parser.add_argument("--model-dir", help="a SavedModel version dir (default: the latest pushed version)")
    parser.add_argument("--requests", type=int, help="measured requests per cell (default: 300, --quick: 50)")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    requests, warmup = args.requests or REQUESTS[mode], WARMUP[mode]
    cfg = load_config()
    model_dir = os.path.abspath(args.model_dir or default_model_dir(cfg))
    if not os.path.basename(model_dir).isdigit() or not os.path.exists(os.path.join(model_dir, "saved_model.pb")):
        raise SystemExit(f"--model-dir {model_dir}: expected a SavedModel version dir, <base>/<number>/saved_model.pb")
    model_name = os.path.basename(os.path.dirname(model_dir))

    from serving import predict

    examples = predict.first_raw_examples(cfg.resolved_data_root, "eval", DISTINCT_BATCHES * max(BATCH_SIZES))
    payloads = build_payloads(examples, model_name)
    load_average = os.getloadavg()
    print(f"model {model_name} at {model_dir}; {len(examples)} eval examples; {mode}: {requests} requests per cell "
          f"after {warmup} per client; load average {load_average[0]:.2f} (the machine should be idle)", flush=True)
    load = LoadGenerator(max(CLIENTS))  # spawned before the floor is measured, idle during it
    cells = []
    try:
        print("in-process floor ...", flush=True)
        floor = in_process(model_dir, examples, requests, warmup)
        print("in-process batching (no transport) ...", flush=True)
        batching_alone = in_process_batching(model_dir, examples, per_thread=30 if args.quick else 100)
        with tempfile.TemporaryDirectory() as tmp:
            configs = server_configs(tmp, model_name, model_dir)
            for server, flags in configs.items():
                print(f"server: batching {server} ...", flush=True)
                with ModelServerProcess(flags, tmp, wait_for_model=model_name) as process:
                    urls = {"grpc": process.grpc_target, "rest": f"{process.url}/v1/models/{model_name}:predict"}
                    for protocol in ("grpc", "rest"):
                        for batch in BATCH_SIZES:
                            for clients in CLIENTS:
                                result = load.run(protocol, urls[protocol], payloads[protocol, batch], batch,
                                                  clients, requests, warmup)
                                cells.append(dict(server=server, protocol=protocol, batch=batch, clients=clients,
                                                  **result))
            print("request logging: off vs sampling 1.0 ...", flush=True)
            overhead = request_logging_overhead(load, tmp, model_name, model_dir, payloads, LOGGING_REQUESTS[mode],
                                                warmup, LOGGING_ROUNDS[mode])
    finally:
        load.close()
    targets = evaluate(cells, floor)
    print_report(cells, floor, targets)
    print_logging_report(overhead)
    print("in-process, 32 threads of batch-1 calls, calls/s: " + ", ".join(
        f"{k} {v:.0f}" for k, v in batching_alone["calls_per_second"].items())
          + "; batched/unbatched: " + ", ".join(f"{k} {v:.2f}x" for k, v in batching_alone["speedup"].items()))
    path = write_results("serving_bench", {
        "mode": mode, "load_average_at_start": load_average, "model_dir": model_dir, "model_name": model_name,
        "requests_per_cell": requests, "warmup_requests_per_client": warmup,
        "clients": {"mode": CLIENT_MODE, "threads_per_process": THREADS_PER_PROCESS},
        "batching_parameters": BATCHING, "batching_parameters_why": BATCHING_WHY, "server_flags": configs,
        "in_process": {str(b): f for b, f in floor.items()}, "cells": cells, "targets": TARGETS, "measured": targets,
        "in_process_batching": batching_alone, "request_logging": overhead,
        "figures": figures_of(targets, batching_alone) + logging_figures(overhead)})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
