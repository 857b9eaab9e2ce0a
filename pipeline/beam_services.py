"""Beam's portable job service and an EXTERNAL SDK worker pool on loopback, for `beam_preset: portable`.

Flink and Spark run Beam Python pipelines through Beam's portable Job API: the pipeline goes to a
job service, which runs it and hands its Python stages to SDK workers in other processes, started
by a worker pool (`--environment_type=EXTERNAL`). Their job servers are jars that Beam downloads at
run time; this preset puts Beam's own Python job service in their place, with the same worker pool
a Flink task manager would have beside it. `tfxp run` starts both for the run (free loopback ports,
a temporary working directory, logs beside the run's log), waits until they accept connections,
and stops them and their workers however the run ends.

The workers need the project's code: tf.Transform traces the user's preprocessing_fn inside its
Beam pipeline (to write the transform graph), so Transform's worker imports the user's package.
What gets it there is the interpreter they run: this one, whose environment has the project
installed (`pip install -e .` here, `pip install .` in the Dockerfile's image), so an SDK worker
imports `components` and `pipeline` like any other process, from whatever directory it runs in;
the data scientist's package comes the same way (installed, or on PYTHONPATH, which the services
inherit). The `--setup_file` local_runner adds makes the PortableRunner build this project's sdist and
stage it to the job service for every Beam job, but only a pool running in Beam's SDK container
(`boot --worker_pool`) pip-installs staged files before starting a worker; this plain Python pool
never does, as Beam's own `worker_pool_main` does not.

The worker pool is Beam's (`apache_beam.runners.worker.worker_pool_main`'s servicer) with these
changes (`python -m pipeline.beam_services worker-pool --port N`): it listens on 127.0.0.1 only
(Beam's binds every interface, and whoever reaches it can start a worker that runs their code);
its workers run this interpreter (Beam's run whatever `python` is first on PATH) and write to the
pool's log (Beam pipes their stdout and never reads it: a chatty worker would block); it logs each
worker's pid.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Iterator, List, Optional, Tuple

from tfxp.errors import TfxpError

log = logging.getLogger(__name__)

JOB_SERVICE_MODULE = "apache_beam.runners.portability.local_job_service_main"
START_TIMEOUT_SECONDS = 120.0  # both import Beam (and grpc): seconds alone, longer on a busy machine
STOP_TIMEOUT_SECONDS = 10.0
_WORKER_STARTED = re.compile(r"started SDK worker (\S+) as pid (\d+)")


class BeamServicesError(RuntimeError, TfxpError):
    """The job service or the worker pool did not come up."""

    exit_code = 1


def _free_ports(count: int) -> List[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def _die_with_parent():
    """A preexec_fn: the kernel kills the child when tfxp dies, even by SIGKILL (no orphaned services)."""
    import ctypes

    prctl = ctypes.CDLL(None).prctl  # looked up before the fork: the child only calls it
    return lambda: prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG


class PortableServices:
    """A running job service and worker pool: their endpoints, the flags that use them, what they did."""

    def __init__(self, log_prefix: str):
        self.job_port, self.pool_port = _free_ports(2)
        self.job_endpoint = f"127.0.0.1:{self.job_port}"
        self.worker_pool_endpoint = f"127.0.0.1:{self.pool_port}"
        self.job_service_log = f"{log_prefix}.beam-job-service.log"
        self.worker_pool_log = f"{log_prefix}.beam-worker-pool.log"
        # Not the project root: the services and their workers find the project as installed.
        self.workdir = tempfile.mkdtemp(prefix="tfxp-beam-")
        self.processes: List[Tuple[str, subprocess.Popen]] = []

    @property
    def beam_args(self) -> List[str]:
        return [f"--job_endpoint={self.job_endpoint}", "--environment_type=EXTERNAL",
                f"--environment_config={self.worker_pool_endpoint}"]

    def start(self) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(self.job_service_log)), exist_ok=True)
        self._spawn("job service", [sys.executable, "-m", JOB_SERVICE_MODULE, "--port", str(self.job_port),
                                    "--staging_dir", os.path.join(self.workdir, "staging")], self.job_service_log)
        self._spawn("worker pool", [sys.executable, "-m", __name__, "worker-pool", "--port", str(self.pool_port)],
                    self.worker_pool_log)

    def _spawn(self, name: str, command: List[str], log_path: str) -> None:
        with open(log_path, "ab") as out:
            # Own session: Ctrl-C in the terminal reaches tfxp, which stops them; killpg reaches their workers.
            process = subprocess.Popen(command, cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True,
                                       preexec_fn=_die_with_parent(),
                                       env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self.processes.append((name, process))

    def wait_until_ready(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        for (name, process), port, log_path in zip(self.processes, (self.job_port, self.pool_port),
                                                   (self.job_service_log, self.worker_pool_log)):
            while not _accepts(port):
                code = process.poll()
                if code is not None or time.monotonic() > deadline:
                    state = (f"it exited with code {code}" if code is not None
                             else f"it did not accept connections within {timeout:.0f} s")
                    log.error("the Beam %s's log ends:%s", name, _tail(log_path))
                    raise BeamServicesError(f"beam_preset portable: the Beam {name} did not come up on "
                                            f"127.0.0.1:{port} ({state}); its log: {log_path}")
                time.sleep(0.1)

    def jobs(self) -> List[Tuple[str, str]]:
        """(job id, state) of every job the job service has received, from its Job API."""
        import grpc
        from apache_beam.portability.api import beam_job_api_pb2, beam_job_api_pb2_grpc

        with grpc.insecure_channel(self.job_endpoint) as channel:
            response = beam_job_api_pb2_grpc.JobServiceStub(channel).GetJobs(beam_job_api_pb2.GetJobsRequest(),
                                                                            timeout=10)
        return [(job.job_id, beam_job_api_pb2.JobState.Enum.Name(job.state)) for job in response.job_info]

    def sdk_worker_pids(self) -> List[int]:
        """The pid of every SDK worker the pool has started, from its log."""
        with open(self.worker_pool_log, errors="replace") as f:
            return [int(m.group(2)) for m in _WORKER_STARTED.finditer(f.read())]

    def summary(self) -> str:
        jobs = self.jobs()
        states = sorted({state for _, state in jobs})
        pids = self.sdk_worker_pids()
        return (f"the Beam job service ran {len(jobs)} jobs ("
                + ", ".join(f"{sum(s == state for _, s in jobs)} {state}" for state in states)
                + f"); the worker pool started {len(pids)} SDK workers (pids {', '.join(map(str, pids)) or '-'}; "
                f"tfxp is pid {os.getpid()})")

    def stop(self) -> None:
        """SIGTERM to each service's process group (the pool's workers are in it), SIGKILL if it lingers."""
        for _, process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for _, process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.0, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # workers left in the group, or a service that hung
            process.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _tail(path: str, lines: int = 15) -> str:
    with contextlib.suppress(OSError), open(path, errors="replace") as f:
        last = f.read().splitlines()[-lines:]
        return ("\n" + "\n".join(last)) if last else ""
    return ""


@contextlib.contextmanager
def portable_services(log_prefix: str, *, timeout: float = START_TIMEOUT_SECONDS) -> Iterator[PortableServices]:
    """A job service and a worker pool for the block's Beam pipelines; both stopped when it ends, however it ends.

    Their logs: ``<log_prefix>.beam-job-service.log`` and ``<log_prefix>.beam-worker-pool.log``.
    """
    services = PortableServices(log_prefix)
    ready = False
    try:
        services.start()
        services.wait_until_ready(timeout)
        ready = True
        log.info("beam_preset portable: job service on %s (pid %d), worker pool on %s (pid %d); logs: %s, %s",
                 services.job_endpoint, services.processes[0][1].pid, services.worker_pool_endpoint,
                 services.processes[1][1].pid, services.job_service_log, services.worker_pool_log)
        yield services
    finally:
        if ready:
            with contextlib.suppress(Exception):  # what they did is for the log; it changes nothing
                log.info("beam_preset portable: %s", services.summary())
        services.stop()


def for_preset(beam_preset: str, log_prefix: str):
    """The services ``beam_preset`` needs beside tfxp run (a PortableServices), or nothing (None)."""
    return portable_services(log_prefix) if beam_preset == "portable" else contextlib.nullcontext()


# -- the worker pool process ------------------------------------------------------------------------

def serve_worker_pool(port: int) -> None:
    """Beam's EXTERNAL worker pool on 127.0.0.1:``port``, starting each SDK worker with this interpreter."""
    import grpc
    from apache_beam.portability.api import beam_fn_api_pb2, beam_fn_api_pb2_grpc
    from apache_beam.runners.worker.worker_pool_main import BeamFnExternalWorkerPoolServicer
    from apache_beam.utils import thread_pool_executor

    class LoopbackWorkerPool(BeamFnExternalWorkerPoolServicer):
        def StartWorker(self, request, unused_context):
            # As worker_pool_main's process mode, with sys.executable and the worker's output in this log.
            command = [sys.executable, "-c",
                       "from apache_beam.runners.worker.sdk_worker import SdkHarness; "
                       f"SdkHarness({request.control_endpoint.url!r}, worker_id={request.worker_id!r}, "
                       f"state_cache_size={self._state_cache_size}, "
                       f"data_buffer_time_limit_ms={self._data_buffer_time_limit_ms}).run()"]
            try:
                process = subprocess.Popen(command, stdin=subprocess.DEVNULL, close_fds=True)
            except OSError as e:
                return beam_fn_api_pb2.StartWorkerResponse(error=f"could not start an SDK worker: {e}")
            self._worker_processes[request.worker_id] = process
            print(f"started SDK worker {request.worker_id} as pid {process.pid}", flush=True)
            return beam_fn_api_pb2.StartWorkerResponse()

    logging.basicConfig(level=logging.INFO)
    server = grpc.server(thread_pool_executor.shared_unbounded_instance(),
                         options=[("grpc.http2.max_pings_without_data", 0), ("grpc.http2.max_ping_strikes", 0)])
    if server.add_insecure_port(f"127.0.0.1:{port}") != port:
        raise SystemExit(f"worker pool: cannot listen on 127.0.0.1:{port}")
    # The values worker_pool_main passes: no state cache, Beam's default data buffer time limit.
    beam_fn_api_pb2_grpc.add_BeamFnExternalWorkerPoolServicer_to_server(
        LoopbackWorkerPool(use_process=True, state_cache_size=0, data_buffer_time_limit_ms=-1), server)
    server.start()
    print(f"worker pool listening on 127.0.0.1:{port} (pid {os.getpid()})", flush=True)
    server.wait_for_termination()  # until SIGTERM (tfxp's stop), which also reaches the workers: one process group


def main(argv: Optional[List[str]] = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m pipeline.beam_services")
    commands = parser.add_subparsers(dest="command", required=True)
    pool = commands.add_parser("worker-pool", help="Beam's EXTERNAL SDK worker pool, on 127.0.0.1")
    pool.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    serve_worker_pool(args.port)


if __name__ == "__main__":
    main()
