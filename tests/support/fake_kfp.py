"""A small stand-in for the Kubeflow Pipelines API server (REST, v2beta1) that records every request.

The real API server needs a cluster (MySQL, Argo, object store), so it cannot run here. This serves
the endpoints kfp 2.5.0's ``kfp.Client`` calls to upload a pipeline version and schedule it, with
KFP's JSON field names (snake_case) and ``display_name`` filters, keeping what was created in memory:

    GET  /apis/v2beta1/healthz                       GET/POST /apis/v2beta1/experiments
    GET/POST /apis/v2beta1/pipelines                 GET  /apis/v2beta1/pipelines/{id}/versions
    POST /apis/v2beta1/pipelines/upload_version      GET/POST /apis/v2beta1/recurringruns
    DELETE /apis/v2beta1/recurringruns/{id}              POST /apis/v2beta1/runs (a one-off run)

    with FakeKFP() as kfp_api:
        ...  # kfp.Client(host=kfp_api.url)
        (created,) = kfp_api.requests_to("POST", "/apis/v2beta1/recurringruns")
        created.body["trigger"]["cron_schedule"]["cron"]

Anything else answers 404, as an endpoint this fake does not know.
"""
from __future__ import annotations

import dataclasses
import email.parser
import email.policy
import hashlib
import itertools
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional
from urllib.parse import parse_qs, urlsplit

API = "/apis/v2beta1"


@dataclasses.dataclass
class Request:
    method: str
    path: str
    query: Dict[str, str]
    body: Any = None  # the JSON body, or {field: bytes} of a multipart upload


def _display_name_filter(query: Dict[str, str]) -> Optional[str]:
    """The value of an EQUALS predicate on display_name (the only filter kfp.Client sends here)."""
    if not query.get("filter"):
        return None
    for predicate in json.loads(query["filter"]).get("predicates", []):
        if predicate.get("key") == "display_name" and predicate.get("operation") in (1, "EQUALS"):
            return predicate.get("stringValue", predicate.get("string_value"))
    raise ValueError(f"filter not understood by the fake: {query['filter']}")


def _multipart(content_type: str, body: bytes) -> Dict[str, bytes]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    return {part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
            for part in message.iter_parts()}


class FakeKFP:
    def __init__(self):
        self.requests: List[Request] = []
        self.pipelines: Dict[str, dict] = {}
        self.versions: Dict[str, dict] = {}  # id -> version, with "package_sha256" of the uploaded bytes
        self.experiments: Dict[str, dict] = {}
        self.recurring_runs: Dict[str, dict] = {}
        self.runs: Dict[str, dict] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server: Optional[ThreadingHTTPServer] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def requests_to(self, method: str, path: str) -> List[Request]:
        return [r for r in self.requests if r.method == method and r.path == API + path]

    def __enter__(self) -> "FakeKFP":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self):
                split = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(split.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                content_type = self.headers.get("Content-Type", "")
                body = (_multipart(content_type, raw) if content_type.startswith("multipart/")
                        else json.loads(raw) if raw else None)
                request = Request(self.command, split.path, query, body)
                with fake._lock:
                    fake.requests.append(request)
                    status, answer = fake._answer(request)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _handle

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="FakeKFP", daemon=True).start()
        return self

    def __exit__(self, *exc_info):
        self._server.shutdown()
        self._server.server_close()

    def _new_id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids)}"

    def _answer(self, r: Request):
        path = r.path[len(API):] if r.path.startswith(API) else None
        route = (r.method, path)
        if route == ("GET", "/healthz"):
            return 200, {"multi_user": False}
        if route == ("GET", "/pipelines"):
            return 200, self._listed("pipelines", self.pipelines.values(), r.query)
        if route == ("POST", "/pipelines"):
            pipeline = dict(r.body, pipeline_id=self._new_id("pipeline"))
            self.pipelines[pipeline["pipeline_id"]] = pipeline
            return 200, pipeline
        if route == ("POST", "/pipelines/upload_version"):
            pipeline_id, name = r.query.get("pipelineid"), r.query.get("name")
            if pipeline_id not in self.pipelines:
                return 404, {"error": f"pipeline {pipeline_id} not found", "code": 5}
            if any(v["pipeline_id"] == pipeline_id and v["display_name"] == name for v in self.versions.values()):
                return 409, {"error": f"a version named {name} already exists", "code": 6}
            version = {"pipeline_id": pipeline_id, "pipeline_version_id": self._new_id("version"),
                       "display_name": name, "description": r.query.get("description", ""),
                       "package_sha256": hashlib.sha256(r.body["uploadfile"]).hexdigest()}
            self.versions[version["pipeline_version_id"]] = version
            return 200, version
        match = re.fullmatch(r"/pipelines/([^/]+)/versions", path or "")
        if r.method == "GET" and match:
            versions = [v for v in self.versions.values() if v["pipeline_id"] == match.group(1)]
            return 200, self._listed("pipeline_versions", versions, r.query)
        if route == ("GET", "/experiments"):
            return 200, self._listed("experiments", self.experiments.values(), r.query)
        if route == ("POST", "/experiments"):
            experiment = dict(r.body, experiment_id=self._new_id("experiment"))
            self.experiments[experiment["experiment_id"]] = experiment
            return 200, experiment
        if route == ("GET", "/recurringruns"):
            runs = [run for run in self.recurring_runs.values()
                    if r.query.get("experiment_id") in (None, run.get("experiment_id"))]
            # KFP's recurring_run.proto names this field recurringRuns (so do kfp-server-api's models).
            return 200, self._listed("recurringRuns", runs, r.query)
        if route == ("POST", "/recurringruns"):
            run = dict(r.body, recurring_run_id=self._new_id("recurring-run"), status="ENABLED")
            self.recurring_runs[run["recurring_run_id"]] = run
            return 200, run
        if route == ("POST", "/runs"):  # a one-off run: the package's spec inline
            run = dict(r.body, run_id=self._new_id("run"), state="PENDING")
            self.runs[run["run_id"]] = run
            return 200, run
        match = re.fullmatch(r"/recurringruns/([^/:]+)", path or "")
        if r.method == "DELETE" and match and match.group(1) in self.recurring_runs:
            del self.recurring_runs[match.group(1)]
            return 200, {}
        return 404, {"error": f"the fake KFP API does not serve {r.method} {r.path}", "code": 5}

    @staticmethod
    def _listed(key: str, items, query: Dict[str, str]) -> dict:
        name = _display_name_filter(query)
        found = [dict(item) for item in items if name is None or item.get("display_name") == name]
        return {key: found, "total_size": len(found)} if found else {}
