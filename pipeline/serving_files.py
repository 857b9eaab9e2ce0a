"""Regenerates the committed serving files from a config: the pipeline's side of serving/'s renderers
(serving/ is told a ServingTarget and never reads a config).

    python -m pipeline.serving_files k8s --config pipeline/configs/kubeflow.yaml --out serving/k8s
    python -m pipeline.serving_files k8s ... --config-files DIR     # + configmap.yaml from DIR's files
    python -m pipeline.serving_files k8s ... --canary-version V     # the canary InferenceService rolls out V
    python -m pipeline.serving_files compose                        # serving/nginx.conf, serving/docker-compose.yml

Tests compare the committed files with a fresh rendering and name this command when they differ.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from pipeline.config import load_config
from serving import k8s, load_balancer
from tfxp.errors import TfxpError
from tfxp.files import write_atomically


def write_k8s(args: argparse.Namespace) -> List[str]:
    target = load_config(args.config, args.set).serving_target
    files = k8s.read_config_files(target, args.config_files) if args.config_files else None
    return k8s.write_manifests(target, args.out, files, args.canary_version)


def write_compose(args: argparse.Namespace) -> List[str]:
    target = load_config(args.config, args.set).serving_target
    written = []
    for path, text in ((load_balancer.NGINX_CONF_PATH, load_balancer.compose_nginx_conf()),
                       (load_balancer.COMPOSE_PATH, load_balancer.render_compose(target))):
        write_atomically(path, text)
        written.append(path)
    return written


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.serving_files", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("k8s", help="the Kubernetes and KServe manifests")
    p.add_argument("--config", default=k8s.PRESET_CONFIG, help=f"the config (default: {k8s.PRESET_CONFIG})")
    p.add_argument("--out", default=os.path.relpath(k8s.K8S_DIR), help="where to write (default: serving/k8s)")
    p.add_argument("--canary-version", help="the pushed version the canary InferenceService rolls out")
    p.add_argument("--config-files", metavar="DIR",
                   help="also write configmap.yaml from the server's config files in DIR "
                        "(e.g. the serving config dir of tfxp serving-config)")
    p.set_defaults(func=write_k8s)
    p = sub.add_parser("compose", help="serving/nginx.conf and serving/docker-compose.yml (the local config's)")
    p.add_argument("--config", default=None, help="the config (default: pipeline/configs/local.yaml)")
    p.set_defaults(func=write_compose)
    for p in sub.choices.values():
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config overrides")
    args = parser.parse_args(argv)
    try:
        paths = args.func(args)
    except (TfxpError, OSError) as e:
        print(f"{parser.prog}: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2)
    for path in paths:
        print(os.path.relpath(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
