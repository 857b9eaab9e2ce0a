"""TF Serving's gRPC API: PredictionService and ModelService with the official servicers of the
``tensorflow-serving-api`` wheel."""
from __future__ import annotations

import logging
import time
from concurrent import futures
from typing import Callable

import grpc
from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from serving import errors, inference, request_log
from serving.manager import ModelManager
from serving.metrics import Metrics

log = logging.getLogger(__name__)
access_log = logging.getLogger("tfxp.serving.access")
LOGGED = {"Predict": request_log.PREDICT, "Classify": request_log.CLASSIFY, "Regress": request_log.REGRESS}


class _Calls:
    """Runs one RPC: maps ServingError to its status, records metrics and one access-log line."""

    def __init__(self, manager: ModelManager, metrics: Metrics):
        self.manager = manager
        self.metrics = metrics

    def call(self, api: str, request, context, handler: Callable, model_spec=None):
        start = time.perf_counter()
        code, version, signature = grpc.StatusCode.OK, "", ""
        spec = model_spec if model_spec is not None else getattr(request, "model_spec", None)
        try:
            response = handler(request)
            out_spec = getattr(response, "model_spec", None)
            if out_spec is not None and out_spec.name:
                version, signature = str(out_spec.version.value), out_spec.signature_name
                if api in LOGGED:
                    self.manager.log_request(out_spec.name, LOGGED[api], request_log.protos, request, response)
            return response
        except errors.ServingError as e:
            code = e.code
            context.abort(e.code, e.message)
        except Exception as e:  # noqa: BLE001 - never crash a server thread
            code = grpc.StatusCode.INTERNAL
            log.exception("%s failed", api)
            context.abort(grpc.StatusCode.INTERNAL, str(e))
        finally:
            seconds = time.perf_counter() - start
            name = spec.name if spec is not None else ""
            self.metrics.record(name, version, signature or (spec.signature_name if spec is not None else ""),
                                api, "grpc", code.name, seconds)
            access_log.info('grpc %s model=%s version=%s %s %.1fms', api, name, version or "-", code.name,
                            seconds * 1000)


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, calls: _Calls):
        self._calls = calls

    def _on_servable(self, function):
        manager = self._calls.manager
        return lambda request: function(
            inference.resolve(manager, request.model_spec, request.HasField("model_spec")), request)

    def Predict(self, request, context):  # noqa: N802 (gRPC method names)
        return self._calls.call("Predict", request, context, self._on_servable(inference.predict))

    def Classify(self, request, context):  # noqa: N802
        return self._calls.call("Classify", request, context, self._on_servable(inference.classify))

    def Regress(self, request, context):  # noqa: N802
        return self._calls.call("Regress", request, context, self._on_servable(inference.regress))

    def GetModelMetadata(self, request, context):  # noqa: N802
        return self._calls.call("GetModelMetadata", request, context,
                                lambda r: inference.metadata(self._calls.manager, r))

    def MultiInference(self, request, context):  # noqa: N802
        return self._calls.call("MultiInference", request, context, _unimplemented("MultiInference"))


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, calls: _Calls, reload_config: Callable):
        self._calls = calls
        self._reload_config = reload_config

    def GetModelStatus(self, request, context):  # noqa: N802
        return self._calls.call("GetModelStatus", request, context,
                                lambda r: inference.model_status(self._calls.manager, r))

    def HandleReloadConfigRequest(self, request, context):  # noqa: N802
        return self._calls.call("HandleReloadConfigRequest", request, context, self._reload_config,
                                model_spec=None)


def _unimplemented(api: str):
    def handler(request):
        raise errors.unimplemented(f"{api} is not implemented by tfxp serve")
    return handler


def reload_config_handler(manager: ModelManager):
    """ModelService.HandleReloadConfigRequest (model_service_impl.cc): applies the request's
    ModelServerConfig; a failure is the RPC's status (TF Serving returns ToGRPCStatus)."""
    from tensorflow_serving.apis import model_management_pb2

    def handler(request):
        if request.config.WhichOneof("config") != "model_config_list":
            raise errors.invalid_argument("ServerModelConfig type not supported by HandleReloadConfigRequest. "
                                          "Only ModelConfigList is currently supported")
        manager.reload_config(request.config)
        return model_management_pb2.ReloadConfigResponse()
    return handler


def make_server(manager: ModelManager, metrics: Metrics, host: str, port: int, max_threads: int,
                max_concurrent_rpcs: int, max_message_bytes: int):
    """A started-later grpc.Server on host:port with both services; returns (server, bound port)."""
    calls = _Calls(manager, metrics)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="grpc"),
        maximum_concurrent_rpcs=max_concurrent_rpcs,
        options=[("grpc.max_receive_message_length", max_message_bytes),
                 ("grpc.max_send_message_length", max_message_bytes),
                 ("grpc.so_reuseport", 0)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionService(calls), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(
        ModelService(calls, reload_config_handler(manager)), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind the gRPC port {host}:{port}")
    return server, bound
