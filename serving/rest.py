"""TF Serving's REST API on FastAPI (served by uvicorn), after ``model_servers/http_rest_api_handler.cc``.

The path is matched with TF Serving's own regular expressions; replies are JSON with TF Serving's
shapes and status codes. Deliberate additions, all documented in docs/serving.md: a request body
limit (413), a bound on requests in flight (429), and a 404 JSON error outside ``/v1/``.
"""
from __future__ import annotations

import logging
import re
import time
from typing import Optional
from urllib.parse import unquote

import anyio
from fastapi import FastAPI, Request
from fastapi.responses import Response
from google.protobuf import json_format

from serving import errors, inference, json_tensor, request_log
from serving.manager import ModelManager
from serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE, Metrics
from serving.servable import CLASSIFY_METHOD, REGRESS_METHOD, Servable
from tfxp import contract

log = logging.getLogger(__name__)
access_log = logging.getLogger("tfxp.serving.access")

# http_rest_api_util.cc (the "Gegex" typo is TF Serving's).
PREDICTION_API_REGEX = re.compile(
    r"(?i)/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)")
MODEL_STATUS_API_REGEX = re.compile(
    r"(?i)/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:\/(metadata))?")
API_PATH_REGEX = re.compile(r"(?i)/v1/.*")
JSON = "application/json"
_INT64_MAX = 2 ** 63 - 1


def _json_response(body: str, status: int = 200) -> Response:
    return Response(content=body.encode("utf-8"), status_code=status, media_type=JSON)


def _error_response(error: errors.ServingError) -> Response:
    return _json_response(json_tensor.error_reply(error.message), error.http_status)


class RestApi:
    """The handler: method and path in, (status, JSON body) out; no HTTP framework in here."""

    def __init__(self, manager: ModelManager):
        self.manager = manager

    @staticmethod
    def parse_path(method: str, path: str):
        """ParseModelInfo: (model, version, label, verb or subresource), or None when it does not match."""
        regex = PREDICTION_API_REGEX if method == "POST" else MODEL_STATUS_API_REGEX if method == "GET" else None
        match = regex.fullmatch(path) if regex is not None else None
        if match is None:
            return None
        name, version, label, verb = match.groups()
        if version is not None:
            if int(version) > _INT64_MAX:
                raise errors.invalid_argument(f"Failed to convert version: {version} to numeric.")
            version = int(version)
        return unquote(name or ""), version, unquote(label) if label else None, verb or ""

    def handle(self, method: str, path: str, body: bytes, info: dict) -> str:
        """The JSON reply; fills ``info`` (model, version, signature, api) for metrics and the access
        log as it learns them. Raises ServingError."""
        parsed = self.parse_path(method, path)
        if parsed:
            info["model"] = parsed[0]
            info["api"] = parsed[3] if method == "POST" else ""
        malformed = errors.invalid_argument(f"Malformed request: {method} {path}")
        if parsed is None:
            raise malformed
        name, version, label, verb = parsed
        if method == "POST":
            if verb == "predict":
                return self.predict(name, version, label, body, info)
            if verb in ("classify", "regress"):
                return self.classify_regress(verb, name, version, label, body, info)
            raise malformed  # the verb is matched case-insensitively, dispatched case-sensitively
        if not name:
            raise errors.invalid_argument("Missing model name in request.")
        if verb == "metadata":
            return self.metadata(name, version, label, info)
        return self.status(name, version)

    def _servable(self, name: str, version: Optional[int], label: Optional[str], info: dict) -> Servable:
        servable = self.manager.servable(name, version, label)
        info["version"] = str(servable.version)
        return servable

    def predict(self, name, version, label, body: bytes, info: dict) -> str:
        document = json_tensor.parse_json(body)
        asked = json_tensor.signature_name(document)
        signature_name = asked or contract.SIGNATURE
        servable = self._servable(name, version, label, info)
        info["signature"] = signature_name
        if signature_name not in servable.signatures:
            raise errors.invalid_argument(f'Serving signature name: "{signature_name}" not found in signature def')
        signature = servable.signatures[signature_name]
        inputs, form = json_tensor.predict_inputs(document, signature.input_dtypes)
        outputs = signature.run(inputs)
        reply = json_tensor.predict_reply(outputs, form)
        self.manager.log_request(servable.name, request_log.PREDICT, request_log.rest_predict, servable, version,
                                 label, asked, signature.key, inputs, outputs)
        return reply

    def classify_regress(self, verb: str, name, version, label, body: bytes, info: dict) -> str:
        document = json_tensor.parse_json(body)
        signature_name = json_tensor.signature_name(document)
        input_proto = json_tensor.classify_regress_input(document, "classify")  # TF Serving says classify for both
        servable = self._servable(name, version, label, info)
        signature = servable.signature(signature_name, CLASSIFY_METHOD if verb == "classify" else REGRESS_METHOD)
        info["signature"] = signature.key
        examples = inference.serialized_examples(input_proto)
        if verb == "classify":
            rows = signature.classify(examples)
            reply = json_tensor.classify_reply(rows)
            self.manager.log_request(servable.name, request_log.CLASSIFY, request_log.rest_classify, servable,
                                     version, label, signature_name, signature.key, input_proto, rows)
            return reply
        values = signature.regress(examples)
        reply = json_tensor.regress_reply(values)
        self.manager.log_request(servable.name, request_log.REGRESS, request_log.rest_regress, servable, version,
                                 label, signature_name, signature.key, input_proto, values)
        return reply

    def status(self, name: str, version: Optional[int]) -> str:
        from tensorflow_serving.apis import get_model_status_pb2

        response = get_model_status_pb2.GetModelStatusResponse()
        for status in self.manager.version_statuses(name, version):  # a label is ignored, as TF Serving does
            inference.add_version_status(response, status)
        return json_format.MessageToJson(response, including_default_value_fields=True, indent=1) + "\n"

    def metadata(self, name: str, version: Optional[int], label: Optional[str], info: dict) -> str:
        servable = self._servable(name, version, label, info)
        options = dict(including_default_value_fields=True, preserving_proto_field_name=True, indent=1)
        spec = inference.metadata_model_spec(servable)
        return ("{\n\"model_spec\":" + json_format.MessageToJson(spec, **options) + "\n,\n"
                "\"metadata\": {\"signature_def\": " + json_format.MessageToJson(servable.signature_def_map(), **options)
                + "\n}\n}\n")


def make_app(manager: ModelManager, metrics: Metrics, max_request_bytes: int, max_in_flight: int, threads: int,
             metrics_path: Optional[str], cors: bool = False) -> FastAPI:
    """The ASGI app: TF Serving's REST API under /v1/, Prometheus metrics at ``metrics_path``."""
    api = RestApi(manager)
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    limiter = anyio.CapacityLimiter(threads)  # --rest_api_num_threads run requests; the rest wait their turn
    state = {"in_flight": 0}
    cors_headers = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "POST, GET",
                    "Access-Control-Allow-Headers": "Content-Type"} if cors else {}

    if metrics_path:
        @app.get(metrics_path)
        async def prometheus() -> Response:
            return Response(content=metrics.page(), media_type=METRICS_CONTENT_TYPE)

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_request_bytes:
            raise _TooLarge(_too_large(max_request_bytes))
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_request_bytes:
                raise _TooLarge(_too_large(max_request_bytes))
            chunks.append(chunk)
        return b"".join(chunks)

    @app.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
    async def dispatch(request: Request) -> Response:
        start = time.perf_counter()
        method = request.method
        path = request.scope.get("raw_path", b"").decode("latin-1") or request.url.path
        status, info = errors.Code.OK, {"model": "", "version": "", "signature": "", "api": ""}
        response: Optional[Response] = None
        try:
            if not API_PATH_REGEX.fullmatch(path):
                status = errors.Code.NOT_FOUND
                response = _json_response(json_tensor.error_reply(f"Not found: {path}"), 404)
                return response
            if method == "OPTIONS":  # CORS preflight, as http_server.cc
                ok = re.search(r"https?://", request.headers.get("origin", "")) is not None
                status = errors.Code.OK if ok else errors.Code.FAILED_PRECONDITION
                response = Response(status_code=200 if ok else 400, headers=cors_headers)
                return response
            if state["in_flight"] >= max_in_flight:
                raise errors.resource_exhausted(f"Too many requests in flight (at most {max_in_flight}); retry later")
            state["in_flight"] += 1
            try:
                body = await read_body(request) if method == "POST" else b""
                output = await anyio.to_thread.run_sync(api.handle, method, path, body, info, limiter=limiter)
            finally:
                state["in_flight"] -= 1
            response = _json_response(output)
        except _TooLarge as e:  # not a TF Serving error: it has no limit (docs/serving.md)
            status = errors.Code.RESOURCE_EXHAUSTED
            response = _json_response(json_tensor.error_reply(str(e)), 413)
        except errors.ServingError as e:
            status = e.code
            response = _error_response(e)
            if e.message.startswith("Failed to convert version"):
                response = _json_response("", 400)  # TF Serving answers this one with an empty body
        except Exception as e:  # noqa: BLE001 - a bug must not take the server down
            log.exception("REST %s %s failed", method, path)
            status = errors.Code.INTERNAL
            response = _error_response(errors.ServingError(errors.Code.INTERNAL, str(e)))
        finally:
            seconds = time.perf_counter() - start
            if API_PATH_REGEX.fullmatch(path):
                metrics.record(info["model"], info["version"], info["signature"], info["api"], "rest", status.name,
                               seconds)
            access_log.info('rest %s %s %s %s %.1fms', request.client.host if request.client else "-", method, path,
                            response.status_code if response is not None else 500, seconds * 1000)
        response.headers.update(cors_headers)
        return response

    return app


class _TooLarge(Exception):
    pass


def _too_large(limit: int) -> str:
    return f"Request body larger than the server's limit of {limit} bytes (--max_request_bytes)"
