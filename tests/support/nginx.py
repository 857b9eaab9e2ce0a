"""Real nginx (Debian's) in front of `tfxp serve` processes, on free loopback ports, for tests."""
from __future__ import annotations

import os
import pwd
import re
import shutil
import signal
import subprocess
from typing import Sequence, Tuple

import requests

from serving.load_balancer import HEALTH_PATH, render_nginx_conf
from bench.model_server import BackgroundProcess, free_port
from tests.support.marks import require

INSTALL_HINT = "nginx is not installed: run `scripts/ensure-system-packages.sh nginx` as root (make test does)"


def nginx_binary() -> str:
    """The nginx executable (Debian puts it in /usr/sbin, which a non-root PATH may lack), or ''."""
    require("nginx", "uses nginx")
    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin") or ""


def nginx_version() -> Tuple[int, ...]:
    """(1, 22, 1) from `nginx -v` ("nginx version: nginx/1.22.1", on stderr)."""
    output = subprocess.run([nginx_binary(), "-v"], capture_output=True, text=True, timeout=10).stderr
    return tuple(int(part) for part in re.search(r"nginx/(\d+(?:\.\d+)*)", output).group(1).split("."))


class NginxProcess(BackgroundProcess):
    """``nginx -c CONF -p RUNTIME_DIR -g 'daemon off;'`` with the config of render_nginx_conf for
    the given instances; waits until /healthz answers. ``stop()`` sends SIGQUIT (graceful)."""

    STOP_SIGNAL = signal.SIGQUIT

    def __init__(self, rest_backends: Sequence[str], grpc_backends: Sequence[str], runtime_dir: str,
                 timeout: float = 20, **options):
        binary = nginx_binary()
        if not binary:
            raise RuntimeError(INSTALL_HINT)
        self.runtime_dir = runtime_dir
        os.makedirs(runtime_dir, exist_ok=True)
        self.rest_port, self.grpc_port = free_port(), free_port()
        # As root, the workers would switch to `nobody` and could not write runtime_dir.
        user = pwd.getpwuid(os.getuid()).pw_name if os.getuid() == 0 else None
        self.conf_path = os.path.join(runtime_dir, "nginx.conf")
        with open(self.conf_path, "w") as f:
            f.write(render_nginx_conf(rest_backends, grpc_backends, rest_listen=f"127.0.0.1:{self.rest_port}",
                                      grpc_listen=f"127.0.0.1:{self.grpc_port}", runtime_dir=runtime_dir,
                                      user=user, worker_processes="1", **options))
        self.url = f"http://127.0.0.1:{self.rest_port}"
        self.grpc_target = f"127.0.0.1:{self.grpc_port}"
        self.access_log = os.path.join(runtime_dir, "access.log")
        self.error_log = os.path.join(runtime_dir, "error.log")
        self._out = self._output = open(os.path.join(runtime_dir, "nginx.out"), "w")
        self.process = subprocess.Popen([binary, "-c", self.conf_path, "-p", runtime_dir, "-g", "daemon off;"],
                                        stdout=self._out, stderr=subprocess.STDOUT)
        self._wait(timeout)

    def _wait(self, timeout: float) -> None:
        self.wait_until(lambda: requests.get(self.url + HEALTH_PATH, timeout=1).ok, timeout,
                        f"nginx (answering {HEALTH_PATH})", self.errors, poll=0.1)

    def errors(self) -> str:
        self._out.flush()
        text = ""
        for path in (os.path.join(self.runtime_dir, "nginx.out"), self.error_log):
            if os.path.exists(path):
                with open(path) as f:
                    text += f.read()
        return text[-3000:]
