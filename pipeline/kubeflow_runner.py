"""Compiles the pipeline for Kubeflow Pipelines (KFP v2 PipelineSpec YAML) with KubeflowV2DagRunner.

The same ``create_pipeline(config)`` as the local run; user code is referenced by
module path (installed in the image), so compiling needs no access to the
pipeline root (no ``module_file`` wheel is built or uploaded).
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from typing import Optional

from pipeline.config import LOCAL_ONLY_PRESETS, ConfigError, PipelineConfig
from tfxp.errors import TfxpError

log = logging.getLogger(__name__)


def compile_pipeline(cfg: PipelineConfig, output_path: str) -> str:
    """Writes the PipelineSpec YAML to ``output_path`` (atomically) and returns the path."""
    if cfg.beam_preset in LOCAL_ONLY_PRESETS:
        raise ConfigError(f"beam_preset {cfg.beam_preset}: its job service and worker pool run beside tfxp run, "
                          f"not in a Kubeflow step; use multi_processing, dataflow, flink or spark")
    from tfx import v1 as tfx

    from pipeline.pipeline import create_pipeline

    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,127}", cfg.pipeline_name):
        raise ConfigError(f"pipeline_name {cfg.pipeline_name!r}: Kubeflow needs lowercase letters, digits and "
                          f"'-' only (e.g. {cfg.pipeline_name.lower().replace('_', '-')!r})")
    if not output_path.endswith((".yaml", ".yml")):
        raise ValueError(f"output {output_path!r}: expected a .yaml file name (KFP v2 PipelineSpec)")
    output_path = os.path.abspath(output_path)
    out_dir = os.path.dirname(output_path)
    os.makedirs(out_dir, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix=".compile-", dir=out_dir)
    try:
        runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
            config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=cfg.image),
            output_dir=tmp_dir, output_filename=os.path.basename(output_path))
        # KFP caches steps itself; its compiler supports only TFX's stock baseline strategy.
        runner.run(create_pipeline(cfg, exclude_candidate_from_baseline=False))
        os.replace(os.path.join(tmp_dir, os.path.basename(output_path)), output_path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    log.info("compiled pipeline %r for Kubeflow (image %s) to %s", cfg.pipeline_name, cfg.image, output_path)
    return output_path


class SubmitError(RuntimeError, TfxpError):
    pass


def default_package_path(cfg: PipelineConfig) -> str:
    from pipeline.config import PROJECT_ROOT
    return os.path.join(PROJECT_ROOT, "runs", "kubeflow", f"{cfg.pipeline_name}.yaml")


def check_reachable(host: str, timeout: float = 10.0) -> None:
    """Fails fast, with the host in the message, when the KFP API does not answer."""
    import requests

    url = host.rstrip("/") + "/apis/v2beta1/healthz"
    try:
        response = requests.get(url, timeout=timeout)
    except requests.exceptions.RequestException as e:
        raise SubmitError(f"cannot reach Kubeflow Pipelines at {host} ({type(e).__name__}: {e}). Check the "
                          f"URL, or port-forward the UI: kubectl port-forward -n kubeflow svc/ml-pipeline-ui "
                          f"8080:80 and use --host http://localhost:8080") from None
    if response.status_code >= 400:
        raise SubmitError(f"Kubeflow Pipelines at {host} answered {response.status_code} on {url}: "
                          f"{response.text[:200]}")


def package_to_submit(cfg: PipelineConfig, package_path: Optional[str]) -> str:
    """The given compiled package (which must exist), or the pipeline compiled now to the default path."""
    if package_path is None:
        return compile_pipeline(cfg, default_package_path(cfg))
    if not os.path.exists(package_path):
        raise SubmitError(f"pipeline package {package_path} does not exist (run tfxp compile)")
    return package_path


def submit(cfg: PipelineConfig, host: str, *, experiment: Optional[str] = None,
           package_path: Optional[str] = None, run_name: Optional[str] = None) -> str:
    """Compiles (unless a package is given) and submits a run; returns the run id."""
    import kfp

    check_reachable(host)
    package_path = package_to_submit(cfg, package_path)
    client = kfp.Client(host=host)
    result = client.create_run_from_pipeline_package(
        package_path, arguments={}, run_name=run_name, experiment_name=experiment)
    log.info("submitted run %s of %s to %s", result.run_id, package_path, host)
    return result.run_id
