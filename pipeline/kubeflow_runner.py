"""Compiles the pipeline for Kubeflow Pipelines (KFP v2 PipelineSpec YAML) with KubeflowV2DagRunner.

The same ``create_pipeline(config)`` as the local run; user code is referenced by
module path (installed in the image), so compiling needs no access to the
pipeline root (no ``module_file`` wheel is built or uploaded). Kubeflow's own: each
step's resources (the config's kubeflow.resources) and the run parameters
(pipeline/run_parameters.py), with their defaults, in the root's inputDefinitions.
"""
from __future__ import annotations

import logging
import os
import re
from typing import Any, Dict, Optional, Sequence

from pipeline.config import LOCAL_ONLY_PRESETS, ConfigError, PipelineConfig
from tfxp.errors import TfxpError
from tfxp.files import atomic_path

log = logging.getLogger(__name__)


def compile_pipeline(cfg: PipelineConfig, output_path: str) -> str:
    """Writes the PipelineSpec YAML to ``output_path`` (atomically) and returns the path."""
    if cfg.beam_preset in LOCAL_ONLY_PRESETS:
        raise ConfigError(f"beam_preset {cfg.beam_preset}: its job service and worker pool run beside tfxp run, "
                          f"not in a Kubeflow step; use multi_processing, dataflow, flink or spark")
    from tfx import v1 as tfx
    from tfx import version as tfx_version
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

    from pipeline.pipeline import create_pipeline

    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,127}", cfg.pipeline_name):
        raise ConfigError(f"pipeline_name {cfg.pipeline_name!r}: Kubeflow needs lowercase letters, digits and "
                          f"'-' only (e.g. {cfg.pipeline_name.lower().replace('_', '-')!r})")
    if not output_path.endswith((".yaml", ".yml")):
        raise ValueError(f"output {output_path!r}: expected a .yaml file name (KFP v2 PipelineSpec)")
    # KFP caches steps itself; its compiler supports only TFX's stock baseline strategy.
    pipeline = create_pipeline(cfg, exclude_candidate_from_baseline=False, runtime_parameters=True)
    size_steps(pipeline, cfg)
    # Pipeline spec 2.1: constants as google.protobuf.Value (`runtimeValue.constant`) and typed parameters
    # (`parameterType`), the only form Kubeflow Pipelines 2's driver and launcher read; TFX's default 2.0 form
    # (`constantValue`) fails there, and its YAML writer fails on any run parameter (KeyError 'parameterType').
    runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
        config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(default_image=cfg.image,
                                                                        use_pipeline_spec_2_1=True))
    job = runner.run(pipeline, write_out=False)
    complete_ir(job["pipelineSpec"], pipeline)
    output_path = os.path.abspath(output_path)
    # TFX's own writer (the header that lists the parameters, then the spec); it picks YAML by the file name.
    temporary = os.path.join(os.path.dirname(output_path), f".{os.path.basename(output_path)}.compiling.yaml")
    with atomic_path(output_path, temporary=temporary) as tmp:
        kubeflow_v2_dag_runner._write_pipeline_spec_to_file(  # pylint: disable=protected-access
            job, f"This is converted from TFX pipeline from tfx-{tfx_version.__version__}.", tmp)
    log.info("compiled pipeline %r for Kubeflow (image %s) to %s", cfg.pipeline_name, cfg.image, output_path)
    return output_path


def size_steps(pipeline, cfg: PipelineConfig) -> None:
    """Gives each step its kubeflow.resources as TFX's platform config (a KFP ResourceSpec). Beam steps on the
    DirectRunner with one worker per core (``--direct_num_workers=0``) get as many workers as their CPU limit:
    Beam counts the node's cores, not the pod's, and a 4-core pod on a 64-core node would start 64."""
    from tfx.dsl.components.base import base_component, executor_spec

    one_per_core = "--direct_num_workers=0" in cfg.resolved_beam_args
    for component in pipeline.components:
        if not isinstance(component, base_component.BaseComponent):
            continue  # resolvers: Kubeflow's driver answers them, no container
        step = cfg.kubeflow.resources.for_node(component.id)
        component.with_platform_config(step.resource_spec())
        if one_per_core and isinstance(component.executor_spec, executor_spec.BeamExecutorSpec):
            component.executor_spec.add_beam_pipeline_args([f"--direct_num_workers={max(1, int(step.cores))}"])


def complete_ir(spec: Dict[str, Any], pipeline) -> None:
    """Finishes, in the compiled PipelineSpec, what TFX 1.16's compiler leaves out: each run parameter's default
    (it compiles only the type, so every run would have to give every value) and the resources of
    FileBasedExampleGen steps (ImportExampleGen: its container spec is built apart and drops the platform config)."""
    from tfx.orchestration.data_types import RuntimeParameter

    from google.protobuf import json_format

    parameters = {value.name: value for component in pipeline.components
                  for value in component.exec_properties.values() if isinstance(value, RuntimeParameter)}
    for name, definition in spec["root"].get("inputDefinitions", {}).get("parameters", {}).items():
        parameter = parameters[name]
        definition.update(defaultValue=parameter.default, isOptional=True)
        if parameter.description:
            definition["description"] = parameter.description
    executors = spec["deploymentSpec"]["executors"]
    for component in pipeline.components:
        if not getattr(component, "platform_config", None):
            continue
        container = executors[spec["components"][component.id]["executorLabel"]]["container"]
        if "resources" not in container:
            container["resources"] = json_format.MessageToDict(component.platform_config)


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


# A pipeline parameter's type in the compiled package (KFP's ParameterType) -> how a --param value is read.
_PARAMETER_TYPES = {"NUMBER_INTEGER": ("an integer", int), "NUMBER_DOUBLE": ("a number", float),
                    "STRING": ("a string", str)}


def run_arguments(package_path: str, assignments: Sequence[str]) -> Dict[str, Any]:
    """``--param name=value`` flags as the run's parameter values, checked against the parameters the compiled
    package declares (its root inputDefinitions: names and types); a parameter not given keeps its default."""
    import yaml

    with open(package_path) as f:
        declared = (yaml.safe_load(f).get("root", {}).get("inputDefinitions", {}).get("parameters", {}))
    values: Dict[str, Any] = {}
    for assignment in assignments:
        name, sep, text = assignment.partition("=")
        if not sep or not name:
            raise SubmitError(f"--param {assignment!r}: expected NAME=VALUE, e.g. --param train_steps=2000")
        if name not in declared:
            raise SubmitError(f"--param {name}: {package_path} has no such run parameter; it has "
                              f"{', '.join(sorted(declared)) or 'none'}")
        what, kind = _PARAMETER_TYPES.get(declared[name].get("parameterType"), ("a string", str))
        try:
            values[name] = kind(text) if kind is not int else int(text, 10)
        except ValueError:
            raise SubmitError(f"--param {name}: expected {what}, got {text!r}") from None
    return values


def submit(cfg: PipelineConfig, host: str, *, experiment: Optional[str] = None,
           package_path: Optional[str] = None, run_name: Optional[str] = None,
           params: Sequence[str] = ()) -> str:
    """Compiles (unless a package is given) and submits a run with ``params`` (``name=value`` run parameter
    values; the others keep the defaults compiled from the config); returns the run id."""
    import kfp

    check_reachable(host)
    package_path = package_to_submit(cfg, package_path)
    arguments = run_arguments(package_path, params)
    client = kfp.Client(host=host)
    result = client.create_run_from_pipeline_package(
        package_path, arguments=arguments, run_name=run_name, experiment_name=experiment)
    log.info("submitted run %s of %s to %s", result.run_id, package_path, host)
    return result.run_id
