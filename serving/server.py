"""``tfxp serve``: TF Serving's model server, in this project's process.

The flags are ``tensorflow_model_server``'s where they exist (same names, same defaults but the
REST port, which the docker image also sets to 8501). The flags the real server has and this one
does not are refused with a line naming them (see ``UNSUPPORTED_FLAGS`` and docs/serving.md).
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass, field
from typing import List, Optional

from serving import errors, protos, request_log
from serving.batching import IMPLEMENTATIONS
from serving.manager import ModelManager
from serving.metrics import DEFAULT_PATH as METRICS_PATH, Metrics
from serving.options import REQUEST_LOG_LIMITS, RequestLogOptions
from serving.servable import ServerBatching
from tfxp import contract
from tfxp.files import is_remote
from tfxp.errors import TfxpError

log = logging.getLogger("tfxp.serving")

# tensorflow_model_server flags this server does not implement: refused, never silently ignored.
UNSUPPORTED_FLAGS = (
    "grpc_socket_path", "ssl_config_file", "use_alts_credentials", "platform_config_file",
    "tensorflow_session_config_file", "per_process_gpu_memory_fraction", "prefer_tflite_model",
    "enable_per_model_batching_parameters", "thread_pool_factory_config_file", "mixed_precision",
    "xla_cpu_compilation_enabled", "grpc_channel_arguments", "saved_model_tags",
)


class ServeError(ValueError, TfxpError):
    """A flag or config file the server cannot start with: one line naming it."""


def _flag_bool(text: str) -> bool:
    value = str(text).lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    cores = os.cpu_count() or 1
    add = parser.add_argument
    boolean = dict(type=_flag_bool, nargs="?", const=True)
    add("--port", type=int, default=contract.GRPC_PORT, help="gRPC port (0: no gRPC)")
    add("--rest_api_port", type=int, default=contract.REST_PORT, help="REST port (0: no REST)")
    add("--host", default="127.0.0.1", help="address to bind (not a TF Serving flag; it binds 0.0.0.0)")
    add("--model_name", default="default", help="the model's name, with --model_base_path")
    add("--model_base_path", default="", help="the model's base dir: numeric version dirs under it")
    add("--model_config_file", default="", help="a ModelServerConfig text proto (several models, "
                                                "version policies and labels); overrides --model_name")
    add("--model_config_file_poll_wait_seconds", type=float, default=0,
        help="re-read --model_config_file every N seconds (0: never)")
    add("--file_system_poll_wait_seconds", type=float, default=1,
        help="look for new and removed versions every N seconds (0: only at start)")
    add("--allow_version_labels_for_unavailable_models", default=False, **boolean,
        help="a new label may name a version that is not loaded yet (moving a label still may not)")
    add("--enable_batching", default=False, **boolean, help="batch concurrent requests together")
    add("--batching_parameters_file", default="", help="a BatchingParameters text proto")
    add("--batching_implementation", default="scheduler", choices=IMPLEMENTATIONS,
        help="not a TF Serving flag: the batch scheduler (default) or TensorFlow's BatchFunction op")
    add("--enable_model_warmup", default=True, **boolean,
        help="replay assets.extra/tf_serving_warmup_requests before a version serves")
    add("--num_request_iterations_for_warmup", type=int, default=1)
    add("--monitoring_config_file", default="", help="a MonitoringConfig text proto (prometheus_config)")
    add("--rest_api_num_threads", type=int, default=4 * cores, help="threads running REST requests")
    add("--rest_api_timeout_in_ms", type=int, default=30000, help="accepted; a request is not cut short")
    add("--rest_api_enable_cors_support", default=False, **boolean)
    add("--grpc_max_threads", type=int, default=4 * cores)
    add("--max_request_bytes", type=int, default=64 * 1024 * 1024,
        help="not a TF Serving flag: larger REST bodies get 413, gRPC messages RESOURCE_EXHAUSTED")
    add("--max_concurrent_requests", type=int, default=256,
        help="not a TF Serving flag: requests in flight per protocol; more get 429/RESOURCE_EXHAUSTED")
    add("--access_log", default="-", help="not a TF Serving flag: access log file ('-': stderr, '': none)")
    add_request_log_arguments(parser)
    # Not a TF Serving flag: for a server another program starts and owns (the InfraValidator's): it stops, as on
    # SIGTERM, when its standard input closes, which happens when that program ends, however it ends.
    add("--stop_on_stdin_eof", default=False, **boolean, help=argparse.SUPPRESS)
    for name in UNSUPPORTED_FLAGS:
        add(f"--{name}", default=None, help=argparse.SUPPRESS)


def add_request_log_arguments(parser: argparse.ArgumentParser) -> None:
    """Not TF Serving flags (its server cannot log): request logging for one model, and the bounds of every
    logger (serving/request_log.py). Defaults: serving/options.RequestLogOptions (None here: not given)."""
    add, default = parser.add_argument, RequestLogOptions()
    add("--request_log_filename_prefix", default=None,
        help="log the --model_name model's requests to <prefix>-<time>-<pid>-<n>.tfrecord files (PredictionLog); "
             "with --model_config_file, give each model a logging_config instead")
    add("--request_log_sampling_rate", type=float, default=None,
        help=f"share of requests logged, 0 to 1 (default {default.sampling_rate})")
    add("--request_log_max_file_bytes", type=int, default=None,
        help=f"a log file is completed before it grows past this (default {default.max_file_bytes})")
    add("--request_log_max_file_seconds", type=float, default=None,
        help=f"... or this long after it was opened (default {default.max_file_seconds:g})")
    add("--request_log_max_total_bytes", type=int, default=None,
        help=f"a prefix's files together; the oldest are deleted first (default {default.max_total_bytes})")
    add("--request_log_queue_size", type=int, default=None,
        help=f"records waiting to be written per prefix; more are dropped and counted (default {default.queue_size})")


def set_request_log_defaults(args, flags: List[str]) -> None:
    """The request log flags ``args`` does not give take their values from ``flags`` (e.g. the pipeline
    config's serving.request_log: PipelineConfig.request_log_server_flags)."""
    parser = argparse.ArgumentParser(add_help=False)
    add_request_log_arguments(parser)
    for key, value in vars(parser.parse_args(flags)).items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)


def request_log_options(args) -> RequestLogOptions:
    """The request log flags, checked (ServeError naming the flag)."""
    given = {key: getattr(args, f"request_log_{key}") for key in REQUEST_LOG_LIMITS + ("sampling_rate",)}
    options = RequestLogOptions(filename_prefix=args.request_log_filename_prefix,
                                **{k: v for k, v in given.items() if v is not None})
    try:
        options.check(name=lambda key: f"--request_log_{key}")
    except ValueError as e:
        raise ServeError(str(e)) from None
    if options.filename_prefix is None and args.request_log_sampling_rate is not None:
        raise ServeError("--request_log_sampling_rate needs --request_log_filename_prefix")
    if options.filename_prefix is not None and args.model_config_file:
        raise ServeError("--request_log_filename_prefix is for one model (--model_base_path); with "
                         "--model_config_file give each model a logging_config (see docs/serving.md)")
    return options


def logging_config(filename_prefix: str, sampling_rate: float):
    """TF Serving's LoggingConfig of a model whose requests this server logs to ``filename_prefix``."""
    from tensorflow_serving.config import logging_config_pb2

    config = logging_config_pb2.LoggingConfig()
    config.log_collector_config.type = request_log.TFRECORD
    config.log_collector_config.filename_prefix = filename_prefix
    config.sampling_config.sampling_rate = sampling_rate
    return config


@dataclass
class ServerOptions:
    model_config: object  # ModelServerConfig
    batching: Optional[ServerBatching]
    metrics_path: Optional[str]
    request_log: RequestLogOptions = field(default_factory=RequestLogOptions)  # the bounds of every logger


def _absolute(base_path: str) -> str:
    return base_path if is_remote(base_path) else os.path.abspath(base_path)


def absolute_paths(config):
    """A ModelServerConfig's base paths and log prefixes, relative to the working directory, made absolute."""
    for model in config.model_config_list.config:
        model.base_path = _absolute(model.base_path)
        collector = model.logging_config.log_collector_config
        if model.HasField("logging_config") and collector.filename_prefix:
            collector.filename_prefix = os.path.abspath(collector.filename_prefix)
    return config


def options_from_args(args) -> ServerOptions:
    """Checks the flags and reads the config files, as TF Serving's main does before starting."""
    from tensorflow_serving.config import model_server_config_pb2

    given = [name for name in UNSUPPORTED_FLAGS if getattr(args, name) is not None]
    if given:
        raise ServeError(f"--{given[0]} is a tensorflow_model_server flag that tfxp serve does not implement "
                         f"(see docs/serving.md)")
    log_options = request_log_options(args)
    try:
        if args.model_config_file:
            config = protos.read_model_server_config(args.model_config_file)
            if config.WhichOneof("config") != "model_config_list":
                raise ServeError(f"{args.model_config_file}: expected a model_config_list")
        elif args.model_base_path:
            config = model_server_config_pb2.ModelServerConfig()
            model = config.model_config_list.config.add(name=args.model_name, base_path=args.model_base_path,
                                                        model_platform="tensorflow")
            if log_options.filename_prefix is not None:
                model.logging_config.CopyFrom(logging_config(log_options.filename_prefix, log_options.sampling_rate))
        else:
            raise ServeError("Both server_options.model_base_path and server_options.model_config_file are empty! "
                             "(give --model_base_path or --model_config_file)")
        for model in config.model_config_list.config:
            if model.model_platform and model.model_platform != "tensorflow":
                raise ServeError(f"Model {model.name} requests unsupported platform {model.model_platform}")
        absolute_paths(config)
        try:
            request_log.check_model_server_config(config)
        except errors.ServingError as e:
            raise ServeError(f"{args.model_config_file or '--request_log_filename_prefix'}: {e.message}") from None
        batching = None
        if args.batching_parameters_file and not args.enable_batching:
            raise ServeError("server_options.batching_parameters_file is set without setting "
                             "server_options.enable_batching to true.")
        if args.enable_batching:
            params = (protos.read_batching_parameters(args.batching_parameters_file)
                      if args.batching_parameters_file else protos.BatchingParameters())
            try:
                batching = ServerBatching.from_proto(params, args.batching_implementation)
            except ValueError as e:
                raise ServeError(f"{args.batching_parameters_file}: {e}") from None
        metrics_path = None
        if args.monitoring_config_file:
            monitoring = protos.read_monitoring_config(args.monitoring_config_file)
            if monitoring.prometheus_config.enable:
                metrics_path = monitoring.prometheus_config.path or METRICS_PATH
    except protos.ConfigFileError as e:
        raise ServeError(str(e)) from None
    if args.port == 0 and args.rest_api_port == 0:
        raise ServeError("--port and --rest_api_port are both 0: nothing to serve on")
    return ServerOptions(config, batching, metrics_path, log_options)


def _setup_access_log(target: str) -> None:
    access = logging.getLogger("tfxp.serving.access")
    access.propagate = False
    access.handlers.clear()
    if not target:  # a level above everything: uvicorn's logging setup re-enables disabled loggers
        access.setLevel(logging.CRITICAL + 1)
        return
    handler = logging.StreamHandler(sys.stderr) if target == "-" else logging.FileHandler(target)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    access.addHandler(handler)
    access.setLevel(logging.INFO)


class ModelServer:
    """Both APIs over one ModelManager; start() binds, wait() serves until SIGTERM/SIGINT."""

    def __init__(self, args, options: ServerOptions):
        from serving import inference

        self.args = args
        self.options = options
        self.metrics = Metrics()
        iterations = max(1, args.num_request_iterations_for_warmup)
        self.manager = ModelManager(options.batching, args.enable_model_warmup,
                                    warmup=lambda servable: inference.warm_up(servable, iterations))
        self.manager.on_change = self.metrics.versions.set
        self.manager.request_logger = request_log.ServerRequestLogger(options.request_log, self.metrics)
        self.manager.allow_labels_for_unavailable = args.allow_version_labels_for_unavailable_models
        self.grpc_server = None
        self.grpc_port = 0
        self.rest_server = None

    def load(self) -> None:
        """Loads every model's aspired versions (as TF Serving does before it opens its ports)."""
        try:
            self.manager.reload_config(self.options.model_config)
        except errors.ServingError as e:
            raise ServeError(f"cannot apply the model config: {e.message}") from None
        for model in self.options.model_config.model_config_list.config:
            versions = self.manager.available_versions(model.name)
            log.info("model %s: %s", model.name, f"serving versions {versions}" if versions else
                     f"no version loaded yet from {model.base_path} (polling)")

    def start(self) -> None:
        from serving import grpc_service

        args = self.args
        if args.port:
            self.grpc_server, self.grpc_port = grpc_service.make_server(
                self.manager, self.metrics, args.host, args.port, args.grpc_max_threads,
                args.max_concurrent_requests, args.max_request_bytes)
            self.grpc_server.start()
            log.info("Running gRPC ModelServer at %s:%d ...", args.host, self.grpc_port)
        if args.rest_api_port and args.rest_api_port != args.port:
            self._start_rest()
        self.manager.start_polling(
            args.file_system_poll_wait_seconds,
            self._read_config if args.model_config_file else None,
            args.model_config_file_poll_wait_seconds)

    def _read_config(self):
        return absolute_paths(protos.read_model_server_config(self.args.model_config_file))

    def _start_rest(self) -> None:
        import uvicorn

        from serving.rest import make_app

        args = self.args
        app = make_app(self.manager, self.metrics, args.max_request_bytes, args.max_concurrent_requests,
                       args.rest_api_num_threads, self.options.metrics_path, args.rest_api_enable_cors_support)
        config = uvicorn.Config(app, host=args.host, port=args.rest_api_port, log_level="warning",
                                access_log=False, timeout_graceful_shutdown=30, lifespan="off",
                                limit_max_requests=None, backlog=2048)
        self.rest_server = uvicorn.Server(config)
        self.rest_server.install_signal_handlers = lambda: None  # ours stop both APIs
        thread = threading.Thread(target=self.rest_server.run, name="rest", daemon=True)
        thread.start()
        self._rest_thread = thread
        while not self.rest_server.started:
            if not thread.is_alive():
                raise ServeError(f"cannot bind the REST port {args.host}:{args.rest_api_port}")
            thread.join(0.02)
        log.info("Exporting HTTP/REST API at:%s:%d ...", args.host, args.rest_api_port)

    def stop(self, grace_seconds: float = 30) -> None:
        """Stops taking requests, lets the ones in flight finish, then returns."""
        self.manager.stop()
        if self.rest_server is not None:
            self.rest_server.should_exit = True
        if self.grpc_server is not None:
            self.grpc_server.stop(grace_seconds).wait()
        if self.rest_server is not None:
            self._rest_thread.join(grace_seconds)
        self.manager.request_logger.close()  # what the requests answered queued is written, the files completed

    def serve_forever(self) -> None:
        stop = stop_on_signals("finishing the requests in flight")
        while not stop.wait(0.5):
            pass
        self.stop()
        log.info("server stopped")


def stop_on_signals(doing: str, logger: logging.Logger = log) -> threading.Event:
    """An event set on SIGTERM or SIGINT (logged: "received SIGTERM: <doing>"), for a server's main loop."""
    stop = threading.Event()

    def on_signal(signum, _frame):
        logger.info("received %s: %s", signal.Signals(signum).name, doing)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


def _stop_when_stdin_closes() -> None:
    def watch() -> None:
        while sys.stdin.buffer.read(65536):
            pass
        log.info("standard input closed: the program that started this server has ended")
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="stdin-eof", daemon=True).start()


def run_serve(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.stop_on_stdin_eof:
        _stop_when_stdin_closes()
    _setup_access_log(args.access_log)
    options = options_from_args(args)
    server = ModelServer(args, options)
    server.load()
    server.start()
    print(f"tfxp serve: gRPC on {args.host}:{server.grpc_port or '-'}, REST on "
          f"{args.host}:{args.rest_api_port or '-'}; models: "
          f"{', '.join(server.manager.model_names())}", file=sys.stderr, flush=True)
    server.serve_forever()
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="tfxp serve", description=__doc__)
    add_serve_arguments(parser)
    try:
        return run_serve(parser.parse_args(argv))
    except ServeError as e:
        print(f"tfxp serve: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
