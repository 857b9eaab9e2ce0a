"""A local stand-in for a Kubernetes API server with the Kubeflow Training Operator, for the TFJob Trainer's tests.

``with FakeTFJobOperator(tmp_dir) as operator:`` serves, on 127.0.0.1, the API paths the kubernetes client
calls for TFJobs (create, get, delete: ``/apis/kubeflow.org/v1/namespaces/<ns>/tfjobs[/<name>]``) and pods'
logs (``/api/v1/namespaces/<ns>/pods/<pod>/log``), records every request (``operator.requests``), and writes a
kubeconfig that points at it (``operator.kubeconfig``: set ``KUBECONFIG`` to it).

A created TFJob's status comes from one of two sources:

* ``script``: a list of (condition type, message) returned one per GET (the last one repeats): the executor's
  waiting, failure and timeout, without running anything; an entry ("HTTP <code>", message) answers that GET
  with that error status instead;
* ``run_replicas=True``: what the Training Operator does, on this machine: every replica of every replica
  type becomes a local process running its container's command (``python`` -> this interpreter) with the
  TF_CONFIG the operator gives it (``genTFConfigJSONStr`` in pkg/controller.v1/tensorflow/tensorflow.go:
  cluster keys are the lowercased replica types, the task its type and index, ``environment: cloud``),
  loopback ports standing in for its headless services. Conditions follow the operator's
  (tfjob_controller.go): Created, then Running while the Chief runs, Succeeded when the Chief exits 0,
  Failed when any replica fails (restartPolicy Never); running replicas are stopped when the job ends
  (cleanPodPolicy Running). Each replica's output is its pod's log.

``refuse_create=(code, message)`` answers every create with that error Status instead (RBAC's 403, a
missing CRD's 404).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Dict, List, Optional, Sequence, Tuple
from urllib.parse import parse_qs, urlsplit

import yaml

from components.training.launcher import free_ports

KIND = "TFJob"
TFJOBS = "/apis/kubeflow.org/v1/namespaces/{namespace}/tfjobs"
ORDER = ("Chief", "Master", "PS", "Worker", "Evaluator")


class _Job:
    def __init__(self, manifest: Dict, script: Optional[List[Tuple[str, str]]]):
        self.manifest = manifest
        self.name, self.namespace = manifest["metadata"]["name"], manifest["metadata"]["namespace"]
        self.script = list(script or [])
        self.conditions: List[Dict] = []
        self.processes: Dict[str, subprocess.Popen] = {}   # pod name -> process
        self.logs: Dict[str, str] = {}                      # pod name -> log file
        self.replica_of: Dict[str, str] = {}                # pod name -> replica type
        self.done = False
        self._condition("Created", f"TFJob {self.name} is created.")

    def _condition(self, kind: str, message: str) -> None:
        if self.conditions and self.conditions[-1]["type"] == kind:
            return
        for condition in self.conditions:
            if condition["type"] == "Running" and kind in ("Succeeded", "Failed"):
                condition["status"] = "False"
        self.conditions.append({"type": kind, "status": "True", "reason": f"{KIND}{kind}", "message": message})

    def start_replicas(self, directory: str, env: Dict[str, str]) -> None:
        specs = self.manifest["spec"]["tfReplicaSpecs"]
        types = [t for t in ORDER if t in specs]
        ports = iter(free_ports(sum(specs[t].get("replicas", 1) for t in types)))
        cluster = {t.lower(): [f"127.0.0.1:{next(ports)}" for _ in range(specs[t].get("replicas", 1))] for t in types}
        for replica_type in types:
            (container,) = [c for c in specs[replica_type]["template"]["spec"]["containers"] if c["name"] == "tensorflow"]
            command = list(container["command"]) + list(container.get("args", []))
            if command[0] == "python":
                command[0] = sys.executable
            for index in range(specs[replica_type].get("replicas", 1)):
                pod = f"{self.name}-{replica_type.lower()}-{index}"
                tf_config = {"cluster": cluster, "task": {"type": replica_type.lower(), "index": index},
                             "environment": "cloud"}
                self.logs[pod] = os.path.join(directory, f"{pod}.log")
                self.replica_of[pod] = replica_type
                with open(self.logs[pod], "w") as log:
                    self.processes[pod] = subprocess.Popen(
                        command, env={**env, "TF_CONFIG": json.dumps(tf_config)}, cwd=directory, stdout=log,
                        stderr=subprocess.STDOUT)

    def next_error(self) -> Optional[Tuple[int, str]]:
        """The scripted error status for this GET, if that is what the script says next."""
        if self.script and self.script[0][0].startswith("HTTP "):
            kind, message = self.script.pop(0)
            return int(kind.split()[1]), message
        return None

    def status(self, advance: bool = True) -> Dict:
        """The status a GET sees (advancing the script or following the replicas), or, not ``advance``, as it is."""
        if advance and self.script:
            kind, message = self.script.pop(0) if len(self.script) > 1 else self.script[0]
            self._condition(kind, message)
        elif advance and self.processes and not self.done:
            self._follow_replicas()
        replica_statuses: Dict[str, Dict[str, int]] = {}
        for pod, process in self.processes.items():
            code = process.poll()
            key = "active" if code is None else "succeeded" if code == 0 else "failed"
            counts = replica_statuses.setdefault(self.replica_of[pod], {})
            counts[key] = counts.get(key, 0) + 1
        return {"conditions": [dict(c) for c in self.conditions], "replicaStatuses": replica_statuses}

    def _follow_replicas(self) -> None:
        codes = {pod: p.poll() for pod, p in self.processes.items()}
        failed = [pod for pod, code in codes.items() if code not in (None, 0)]
        if failed:
            counts: Dict[str, int] = {}
            for pod in failed:
                counts[self.replica_of[pod]] = counts.get(self.replica_of[pod], 0) + 1
            replica_type, count = next(iter(counts.items()))
            self._finish("Failed", f"TFJob {self.namespace}/{self.name} has failed because {count} {replica_type} "
                                   f"replica(s) failed.")
        elif all(codes[pod] == 0 for pod, t in self.replica_of.items() if t in ("Chief", "Master")):
            self._finish("Succeeded", f"TFJob {self.namespace}/{self.name} successfully completed.")
        elif any(code is None for code in codes.values()):
            self._condition("Running", f"TFJob {self.namespace}/{self.name} is running.")

    def _finish(self, kind: str, message: str) -> None:
        self._condition(kind, message)
        self.done = True
        self.stop()

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


class FakeTFJobOperator:
    def __init__(self, directory: str, *, script: Optional[Sequence[Tuple[str, str]]] = None,
                 run_replicas: bool = False, env: Optional[Dict[str, str]] = None,
                 refuse_create: Optional[Tuple[int, str]] = None):
        self.directory, self.script, self.run_replicas = directory, list(script or []), run_replicas
        self.refuse_create = refuse_create
        self.env = dict(env if env is not None else os.environ)
        self.requests: List[Tuple[str, str, Optional[Dict]]] = []
        self.jobs: Dict[str, _Job] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self.kubeconfig = os.path.join(directory, "kubeconfig")

    def __enter__(self) -> "FakeTFJobOperator":
        os.makedirs(self.directory, exist_ok=True)
        with open(self.kubeconfig, "w") as f:
            yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "fake",
                            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
                            "users": [{"name": "fake", "user": {"token": "fake-token"}}],
                            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake"}}]}, f)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        for job in self.jobs.values():
            job.stop()

    @property
    def created(self) -> List[Dict]:
        """The bodies of the TFJobs created, in order."""
        return [body for method, path, body in self.requests if method == "POST"]

    def _handler(self):
        operator = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, code: int, body, content_type: str = "application/json") -> None:
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self) -> Optional[Dict]:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                with operator._lock:
                    operator.requests.append((self.command, self.path, body))
                return body

            def _status(self, code: int, message: str) -> None:
                reasons = {403: "Forbidden", 404: "NotFound", 500: "InternalError", 503: "ServiceUnavailable"}
                self._send(code, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                  "reason": reasons.get(code, "Unknown"), "code": code, "message": message})

            def _not_found(self, what: str) -> None:
                self._status(404, f"{what} not found")

            def do_POST(self):
                body = self._record()
                parts = urlsplit(self.path).path.strip("/").split("/")
                if parts[:3] != ["apis", "kubeflow.org", "v1"] or parts[-1] != "tfjobs":
                    return self._not_found(self.path)
                if operator.refuse_create:
                    return self._status(*operator.refuse_create)
                job = _Job(body, operator.script)
                with operator._lock:
                    operator.jobs[job.name] = job
                if operator.run_replicas:
                    job.start_replicas(operator.directory, operator.env)
                self._send(201, {**body, "status": job.status(advance=False)})

            def do_GET(self):
                self._record()
                url = urlsplit(self.path)
                parts = url.path.strip("/").split("/")
                if parts[:2] == ["api", "v1"] and parts[-1] == "log":
                    pod = parts[-2]
                    job = next((j for j in operator.jobs.values() if pod in j.logs), None)
                    if job is None:
                        return self._not_found(f"pods {pod!r}")
                    lines = int(parse_qs(url.query).get("tailLines", ["1000000"])[0])
                    with open(job.logs[pod], errors="replace") as f:
                        return self._send(200, "".join(f.readlines()[-lines:]), "text/plain")
                job = operator.jobs.get(parts[-1])
                if job is None:
                    return self._not_found(f"tfjobs.kubeflow.org {parts[-1]!r}")
                with operator._lock:
                    error = job.next_error()
                    status = None if error else job.status()
                if error:
                    return self._status(*error)
                self._send(200, {**job.manifest, "status": status})

            def do_DELETE(self):
                self._record()
                job = operator.jobs.pop(urlsplit(self.path).path.rstrip("/").split("/")[-1], None)
                if job is None:
                    return self._not_found(self.path)
                job.stop()
                self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})

        return Handler
