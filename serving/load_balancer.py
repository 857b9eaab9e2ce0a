"""Many `tensorflow/serving` instances behind nginx: the nginx config and the docker-compose file.

One nginx template (``serving/templates/nginx.conf.j2``) renders both the committed
``serving/nginx.conf`` (backends ``serving:8501``/``serving:8500``: compose's DNS name of the scaled
service, which nginx resolves to every replica) and, in the tests, a loopback config in front of
``tfxp serve`` processes. ``serving/docker-compose.yml`` is ``render_compose`` of the local config's serving target.
Both committed files are generated: ``python -m pipeline.serving_files compose`` rewrites them, and a
test checks that they match. No TensorFlow here.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence

import jinja2
import yaml

from serving.options import CONTAINER_CONFIG_DIR, GRPC_PORT, METRICS_PATH, REST_PORT, ServingTarget
from tfxp.errors import TfxpError
from tfxp.files import is_remote

class ComposeError(ValueError, TfxpError):
    """A serving target docker-compose cannot serve: names the path and what was expected."""


SERVING_DIR = os.path.dirname(os.path.abspath(__file__))
NGINX_CONF_PATH = os.path.join(SERVING_DIR, "nginx.conf")
COMPOSE_PATH = os.path.join(SERVING_DIR, "docker-compose.yml")
# The compose service of the TF Serving replicas: also the DNS name nginx balances over.
SERVING_SERVICE = "serving"
# A stable nginx with the fix for retrying a gRPC call on the next instance (1.29.7, commit a29476464
# "gRPC: reset buffer chains on upstream reinit": before it, such a retry can stall). The tests run
# Debian 12's 1.22 on the same file (`listen ... http2` works in both; newer ones warn it is deprecated).
NGINX_IMAGE = "nginx:1.30"
HEALTH_PATH = "/healthz"
# `tfxp serving-config` writes these into the serving config dir as COMPOSE_ENV_FILE.
MODEL_DIR_VAR, CONFIG_DIR_VAR = "TFXP_MODEL_DIR", "TFXP_CONFIG_DIR"
COMPOSE_ENV_FILE = "compose.env"
REGENERATE = "python -m pipeline.serving_files compose"


def render_nginx_conf(rest_backends: Sequence[str], grpc_backends: Sequence[str], *,
                      rest_listen: str = str(REST_PORT), grpc_listen: str = str(GRPC_PORT),
                      runtime_dir: Optional[str] = None, user: Optional[str] = None,
                      tries: int = 3, connect_timeout: str = "2s", read_timeout: str = "60s",
                      retry_timeout: str = "10s", fail_timeout: str = "10s", max_body: str = "64m",
                      worker_processes: str = "auto", header: Optional[str] = None) -> str:
    """nginx.conf balancing REST (``host:port`` of each instance's REST port) and gRPC backends.

    ``rest_listen``/``grpc_listen``: nginx's ``listen`` addresses (``8501``, ``127.0.0.1:8501``).
    ``runtime_dir``: pid, logs and temp dirs go there (``nginx -c CONF -p DIR`` as any user); None
    keeps the image's defaults, logging to stdout/stderr. ``user``: the workers' user when nginx
    starts as root (with a runtime_dir, the user owning it, so the workers can write there).
    A request is tried on at most ``tries`` instances within ``retry_timeout``.
    """
    if not rest_backends or not grpc_backends:
        raise ValueError("nginx needs at least one REST and one gRPC backend")
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(SERVING_DIR, "templates")),
                                     trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                                     undefined=jinja2.StrictUndefined)
    return environment.get_template("nginx.conf.j2").render(
        header=header or "Rendered by serving/load_balancer.py from serving/templates/nginx.conf.j2.",
        rest_backends=list(rest_backends), grpc_backends=list(grpc_backends),
        rest_listen=rest_listen, grpc_listen=grpc_listen, runtime_dir=runtime_dir, user=user, tries=tries,
        connect_timeout=connect_timeout, read_timeout=read_timeout, retry_timeout=retry_timeout,
        fail_timeout=fail_timeout, max_body=max_body, worker_processes=worker_processes,
        metrics_path=METRICS_PATH)


def compose_nginx_conf() -> str:
    """The committed serving/nginx.conf: every replica of the compose service, image default paths."""
    return render_nginx_conf([f"{SERVING_SERVICE}:{REST_PORT}"], [f"{SERVING_SERVICE}:{GRPC_PORT}"],
                             header=f"Generated from serving/templates/nginx.conf.j2: do not edit, run `{REGENERATE}`.")


def healthcheck_command(model_name: str, port: int = REST_PORT) -> List[str]:
    """Is ``model_name`` AVAILABLE on this instance? The tensorflow/serving image (Ubuntu with
    tensorflow_model_server, no curl or wget) has bash: GET over bash's /dev/tcp."""
    script = (f"exec 3<>/dev/tcp/127.0.0.1/{port} && "
              f"printf 'GET /v1/models/{model_name} HTTP/1.0\\r\\n\\r\\n' >&3 && "
              "grep -q '\"AVAILABLE\"' <&3")
    return ["CMD", "bash", "-c", script]


def render_compose(target: ServingTarget) -> str:
    """serving/docker-compose.yml: ``target.options.replicas`` TF Serving containers behind nginx.

    The push dir is mounted read-only at its host path, because models.config's base_path is
    that path; the serving config dir (models.config, batching, monitoring) at CONTAINER_CONFIG_DIR.
    Both paths come from the env file `tfxp serving-config` writes (compose_env).
    """
    serving = target.options
    env_file = compose_env_path(target)
    hint = f"run tfxp serving-config, then docker compose --env-file {env_file}"
    model_dir = f"${{{MODEL_DIR_VAR}:?{hint}}}"
    config_dir = f"${{{CONFIG_DIR_VAR}:?{hint}}}"
    compose: Dict = {"services": {
        SERVING_SERVICE: {
            "image": serving.image,
            # The image's entrypoint runs tensorflow_model_server with these flags appended
            # (--model_config_file wins over its --model_name/--model_base_path).
            "command": serving.server_args(CONTAINER_CONFIG_DIR),
            "volumes": [
                {"type": "bind", "source": model_dir, "target": f"${{{MODEL_DIR_VAR}}}", "read_only": True},
                {"type": "bind", "source": config_dir, "target": CONTAINER_CONFIG_DIR, "read_only": True},
            ],
            "deploy": {"replicas": serving.replicas},
            # Unhealthy only after the time a model may take to load (the InfraValidator's bound too).
            "healthcheck": {"test": healthcheck_command(target.model_name), "interval": "10s", "timeout": "5s",
                            "retries": 3, "start_period": f"{serving.infra_validation.max_loading_seconds}s"},
            "restart": "unless-stopped",
        },
        "nginx": {
            "image": NGINX_IMAGE,
            "ports": [f"{GRPC_PORT}:{GRPC_PORT}", f"{REST_PORT}:{REST_PORT}"],
            "volumes": [{"type": "bind", "source": "./nginx.conf", "target": "/etc/nginx/nginx.conf",
                         "read_only": True}],
            # nginx resolves `serving` to the replicas' addresses when it starts: after they exist.
            "depends_on": {SERVING_SERVICE: {"condition": "service_healthy"}},
            "restart": "unless-stopped",
        },
    }}
    header = (f"# Generated by serving/load_balancer.py from the local config: do not edit, run `{REGENERATE}`.\n"
              f"# {serving.replicas} x {serving.image} behind nginx (REST :{REST_PORT}, gRPC :{GRPC_PORT}, "
              f"{HEALTH_PATH} on :{REST_PORT}).\n"
              "#   tfxp serving-config\n"
              f"#   docker compose --env-file {env_file} -f serving/docker-compose.yml up\n")
    return header + yaml.safe_dump(compose, sort_keys=False, default_flow_style=False, width=1000)


def compose_env_path(target: ServingTarget) -> str:
    """Where `tfxp serving-config` writes the env file, relative to the project when inside it."""
    path = os.path.join(target.config_dir, COMPOSE_ENV_FILE)
    relative = os.path.relpath(os.path.abspath(path), os.path.dirname(SERVING_DIR))
    return path if relative.startswith("..") else relative


def _env_value(path: str) -> str:
    if "'" in path or "\n" in path:
        raise ComposeError(f"cannot write {path!r} to a compose env file")
    return f"'{path}'" if any(c in path for c in " \t\"#$\\") else path


def compose_env(target: ServingTarget) -> str:
    """The env file for docker-compose: where the push dir and the serving config dir are."""
    model_dir, config_dir = target.model_base_path, target.config_dir
    for path in (model_dir, config_dir):
        if is_remote(path):
            raise ComposeError(f"docker-compose mounts local directories; {path} is remote "
                             "(serve it with the Kubernetes files, where TF Serving reads it directly)")
    return (f"# docker compose --env-file THIS_FILE -f serving/docker-compose.yml up\n"
            f"{MODEL_DIR_VAR}={_env_value(os.path.abspath(model_dir))}\n"
            f"{CONFIG_DIR_VAR}={_env_value(os.path.abspath(config_dir))}\n")
