"""`beam_preset: portable`: the pipeline's Beam work runs through Beam's portable Job API, as on Flink or
Spark, in SDK workers that an EXTERNAL worker pool starts in processes of their own.

The services (pipeline/beam_services.py) come up on loopback, stop with their workers however the
block ends, and say clearly when they do not come up; then the whole pipeline runs on them (marked
e2e), with a user package whose preprocessing.py notes every process that imports it.
"""
import ipaddress
import os
import re
import subprocess
import sys
import time

import psutil
import pytest

from pipeline import beam_services
from pipeline.config import PROJECT_ROOT, ConfigError, load_config
from tests.support.marks import uses


def _accepts(endpoint: str) -> bool:
    return beam_services._accepts(int(endpoint.rsplit(":", 1)[1]))


def _is_loopback(ip: str) -> bool:
    address = ipaddress.ip_address(ip)
    return address.is_loopback or bool(getattr(address, "ipv4_mapped", None) and address.ipv4_mapped.is_loopback)


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.beam
def test_the_services_listen_on_loopback_from_a_directory_of_their_own_and_are_gone_after(tmp_path):
    with beam_services.portable_services(str(tmp_path / "run")) as services:
        processes = [process for _, process in services.processes]
        assert services.job_endpoint.startswith("127.0.0.1:") and _accepts(services.job_endpoint)
        assert services.worker_pool_endpoint.startswith("127.0.0.1:") and _accepts(services.worker_pool_endpoint)
        listening = [conn.laddr.ip for p in processes for conn in psutil.Process(p.pid).net_connections("tcp")
                     if conn.status == psutil.CONN_LISTEN]
        assert listening and all(_is_loopback(ip) for ip in listening), listening
        assert all(psutil.Process(p.pid).cwd() == services.workdir != PROJECT_ROOT for p in processes)
        assert services.beam_args == [f"--job_endpoint={services.job_endpoint}", "--environment_type=EXTERNAL",
                                      f"--environment_config={services.worker_pool_endpoint}"]
    assert all(process.poll() is not None for process in processes)
    assert not _accepts(services.job_endpoint) and not _accepts(services.worker_pool_endpoint)
    assert not os.path.exists(services.workdir)
    assert os.path.exists(services.job_service_log) and os.path.exists(services.worker_pool_log)


def _sleep_then_note_pid(x, path):
    import time
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    time.sleep(120)
    return x


@pytest.mark.beam
def test_a_job_runs_in_an_sdk_worker_of_the_pool_which_an_interrupt_stops_with_the_services(tmp_path):
    """A job still running when the run is interrupted: its worker is stopped with the services."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    noted = tmp_path / "pids"
    with pytest.raises(KeyboardInterrupt):
        with beam_services.portable_services(str(tmp_path / "run")) as services:
            pipeline = beam.Pipeline(options=PipelineOptions(["--runner=PortableRunner"] + services.beam_args))
            _ = pipeline | beam.Create([1]) | beam.Map(_sleep_then_note_pid, str(noted))
            pipeline.run()  # returns once submitted; the job runs in the job service and the pool's worker
            deadline = time.monotonic() + 120
            while not (noted.exists() and noted.read_text().strip()) and time.monotonic() < deadline:
                time.sleep(0.2)
            [worker] = [int(pid) for pid in noted.read_text().split()]
            assert worker != os.getpid() and services.sdk_worker_pids() == [worker]
            assert psutil.Process(worker).ppid() == services.processes[1][1].pid  # a child of the worker pool
            assert [state for _, state in services.jobs()] == ["RUNNING"]
            raise KeyboardInterrupt
    assert _gone(worker) and all(_gone(process.pid) for _, process in services.processes)


def test_a_service_that_does_not_come_up_is_an_error_naming_it_and_its_log(tmp_path, monkeypatch):
    monkeypatch.setattr(beam_services, "JOB_SERVICE_MODULE", "apache_beam.no_such_job_service")
    with pytest.raises(beam_services.BeamServicesError) as error:
        with beam_services.portable_services(str(tmp_path / "run")):
            pytest.fail("the block must not run without its services")
    message = str(error.value)
    assert message.startswith("beam_preset portable: the Beam job service did not come up on 127.0.0.1:")
    assert "(it exited with code 1)" in message and message.endswith(f"its log: {tmp_path}/run.beam-job-service.log")
    assert "No module named apache_beam.no_such_job_service" in (tmp_path / "run.beam-job-service.log").read_text()
    assert not [p for p in psutil.Process().children(recursive=True) if "pipeline.beam_services" in p.cmdline()]


def test_tfxp_run_says_in_one_line_which_service_did_not_come_up(tmp_path, monkeypatch, capsys):
    from pipeline import cli
    from tests.conftest import write_csv_slice
    from tests.support.sample_run import write_config

    monkeypatch.setattr(beam_services, "JOB_SERVICE_MODULE", "apache_beam.no_such_job_service")
    config_path = write_config(tmp_path, write_csv_slice(tmp_path / "slice.csv", 100), beam_preset="portable")
    assert cli.main(["run", "--config", config_path]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert re.fullmatch(r"tfxp run: error: beam_preset portable: the Beam job service did not come up on "
                        r"127\.0\.0\.1:\d+ \(it exited with code 1\); its log: \S+\.beam-job-service\.log "
                        r"\(full log: \S+\.log\)", line), line


def test_the_portable_preset_takes_the_services_endpoints_and_the_config_s_beam_args_win():
    from pipeline.local_runner import local_beam_args

    class Services:
        beam_args = ["--job_endpoint=127.0.0.1:1", "--environment_type=EXTERNAL", "--environment_config=127.0.0.1:2"]

    setup_file = f"--setup_file={os.path.join(PROJECT_ROOT, 'setup.py')}"
    cfg = load_config(overrides=["beam_preset=portable"])
    assert local_beam_args(cfg, Services()) == ["--runner=PortableRunner", "--environment_type=EXTERNAL",
                                                "--job_endpoint=127.0.0.1:1", "--environment_config=127.0.0.1:2",
                                                setup_file]
    mine = load_config(overrides=["beam_preset=portable", "beam_args=[--environment_config=10.0.0.5:50000]"])
    assert "--environment_config=10.0.0.5:50000" in local_beam_args(mine, Services())


def test_kubeflow_refuses_the_portable_preset(tmp_path):
    from pipeline.kubeflow_runner import compile_pipeline

    cfg = load_config(overrides=["beam_preset=portable", "pipeline_name=taxi"])
    with pytest.raises(ConfigError, match="beam_preset portable: its job service and worker pool run beside tfxp run"):
        compile_pipeline(cfg, str(tmp_path / "pipeline.yaml"))


# -- the whole pipeline on the portable preset ------------------------------------------------------

# A data scientist's package that is the sample's (imported from the installed project) and notes, on
# import of its preprocessing.py, which process imported it, from where, and where `components` came from.
# Its preprocessing_fn is its own (calling the sample's), so that a pickled reference to it names this module.
PROBE_PACKAGE = {
    "__init__.py": "",
    "features.py": "from components.features import *  # noqa: F401,F403\n",
    "model.py": "from components.model import *  # noqa: F401,F403\n",
    "preprocessing.py": (
        "import os\n\n"
        "import components\n"
        "from components import preprocessing as sample\n\n"
        "if 'PORTABLE_PROBE_FILE' in os.environ:\n"
        "    with open(os.environ['PORTABLE_PROBE_FILE'], 'a') as f:\n"
        "        f.write(f'{os.getpid()} {os.getcwd()} {os.path.dirname(components.__file__)}\\n')\n\n\n"
        "def preprocessing_fn(inputs):\n"
        "    return sample.preprocessing_fn(inputs)\n"),
}
# The components whose executors always run a Beam pipeline; ImportExampleGen's copies the pre-split
# files (components/custom/import_examples.py) and runs none.
BEAM_COMPONENTS = ["StatisticsGen", "Transform", "evaluator"]


@pytest.fixture(scope="module")
@uses("e2e")
def portable_run(tmp_path_factory):
    """`tfxp run` of 400 sample rows with beam_preset portable, 20 train steps, no TFLite branch."""
    from tests.conftest import write_csv_slice
    from tests.support.sample_run import write_config

    tmp = tmp_path_factory.mktemp("portable")
    package = tmp / "pkg" / "probe"
    package.mkdir(parents=True)
    for name, text in PROBE_PACKAGE.items():
        (package / name).write_text(text)
    config_path = write_config(tmp, write_csv_slice(tmp / "slice.csv", 400), name="portable",
                               beam_preset="portable", user_package="probe", tflite={"enabled": False},
                               training={"train_steps": 20, "eval_steps": 5, "batch_size": 32})
    probe = tmp / "probe.txt"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PORTABLE_PROBE_FILE=str(probe),
               PYTHONPATH=os.pathsep.join([str(tmp / "pkg"), os.environ.get("PYTHONPATH", "")]))
    tfxp = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "run", "--config", config_path], cwd=str(tmp),
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = tfxp.communicate(timeout=1200)
    assert tfxp.returncode == 0, stdout[-3000:] + stderr[-5000:]
    with open(stdout.split("full log: ")[1].split(")")[0]) as f:
        log = f.read()
    started = re.search(r"beam_preset portable: job service on 127\.0\.0\.1:(\d+) \(pid (\d+)\), worker pool on "
                        r"127\.0\.0\.1:(\d+) \(pid (\d+)\); logs: (\S+), (\S+)\n", log)
    with open(started[6]) as f:
        pool_log = f.read()
    sys.path.insert(0, str(tmp / "pkg"))  # the probe package, for this process's config check too
    yield {"cfg": load_config(config_path), "stdout": stdout, "log": log, "tfxp_pid": tfxp.pid,
            "ports": [int(started[1]), int(started[3])], "service_pids": [int(started[2]), int(started[4])],
            "worker_pids": [int(pid) for pid in re.findall(r"started SDK worker \S+ as pid (\d+)", pool_log)],
            "probe": [line.split() for line in (probe.read_text() if probe.exists() else "").splitlines()]}
    sys.path.remove(str(tmp / "pkg"))


@pytest.mark.e2e
def test_the_whole_pipeline_runs_on_the_portable_preset_and_pushes_a_model(portable_run):
    from pipeline.run_summary import EXECUTED, latest_run_states
    from serving import predict

    cfg = portable_run["cfg"]
    states = latest_run_states(cfg.resolved_metadata_path, cfg.pipeline_name)
    assert set(BEAM_COMPONENTS) <= set(states) and set(states.values()) == {EXECUTED}, states
    assert len(predict.model_versions(cfg.serving_model_dir)) == 1 and "Pushed model:" in portable_run["stdout"]


@pytest.mark.e2e
def test_each_beam_component_is_one_job_of_the_job_service_each_in_its_own_sdk_worker(portable_run):
    workers = portable_run["worker_pids"]
    summary = (f"the Beam job service ran {len(BEAM_COMPONENTS)} jobs ({len(BEAM_COMPONENTS)} DONE); the worker "
               f"pool started {len(BEAM_COMPONENTS)} SDK workers (pids {', '.join(map(str, workers))}; "
               f"tfxp is pid {portable_run['tfxp_pid']})")
    assert summary in portable_run["log"]
    assert len(set(workers)) == len(BEAM_COMPONENTS)
    assert not set(workers) & {portable_run["tfxp_pid"], *portable_run["service_pids"]}


@pytest.mark.e2e
def test_the_user_package_and_the_installed_project_reach_the_sdk_workers_outside_the_project_root(portable_run):
    """Transform's worker imports the user's preprocessing.py, which imports the sample's from the installed project."""
    in_workers = [line for line in portable_run["probe"] if int(line[0]) in portable_run["worker_pids"]]
    assert in_workers, portable_run["probe"]
    assert all(cwd != PROJECT_ROOT and components == os.path.join(PROJECT_ROOT, "components")
               for _, cwd, components in in_workers)


@pytest.mark.e2e
def test_the_services_and_their_workers_are_gone_after_the_run(portable_run):
    assert all(_gone(pid) for pid in portable_run["service_pids"] + portable_run["worker_pids"])
    assert not any(beam_services._accepts(port) for port in portable_run["ports"])


def test_the_beam_benchmark_compares_each_preset_with_in_memory():
    from bench import beam_presets

    assert beam_presets.PRESETS == ["in_memory", "multi_processing", "portable"]
    figures = {f["name"]: f["value"] for f in beam_presets.figures_of(
        {"in_memory": {"wall_seconds": 100.0}, "multi_processing": {"wall_seconds": 120.0},
         "portable": {"wall_seconds": 150.0}})}
    assert figures["whole pipeline wall time, portable / in_memory"] == 1.5
    assert figures["whole pipeline wall time, multi_processing / in_memory"] == 1.2
    assert figures["whole pipeline wall time, portable"] == 150.0
