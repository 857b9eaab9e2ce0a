"""The Dockerfile can't be built here (no Docker engine): check what it promises statically."""
import fnmatch
import os
import re

from setuptools import find_packages

from pipeline.config import PROJECT_ROOT, load_config

DOCKERFILE = open(os.path.join(PROJECT_ROOT, "Dockerfile")).read()
IGNORED = [p.strip() for p in open(os.path.join(PROJECT_ROOT, ".dockerignore")) if p.strip()]


def _in_image(relative_path):
    """Whether `COPY . ./` puts the path into the image, per .dockerignore."""
    return not any(fnmatch.fnmatch(relative_path, p) or relative_path.split("/")[0] == p for p in IGNORED)


def test_image_is_python_3_10():
    assert re.search(r"^FROM python:3\.10", DOCKERFILE, re.M)


def test_installs_the_frozen_environment_then_the_project():
    assert "pip install -r constraints.txt" in DOCKERFILE
    assert DOCKERFILE.index("pip install -r constraints.txt") < DOCKERFILE.index("COPY . ./")
    assert "pip install --no-deps ." in DOCKERFILE


def test_every_package_setup_py_installs_is_copied_into_the_image():
    packages = find_packages(PROJECT_ROOT, exclude=["tests", "tests.*", "bench", "bench.*"])
    assert {"components", "components.training", "components.custom", "components.core", "pipeline"} <= set(packages)
    for package in packages:
        assert _in_image(package.replace(".", "/") + "/__init__.py"), package


def test_the_kubeflow_preset_schema_path_is_where_the_image_puts_it():
    cfg = load_config(os.path.join(PROJECT_ROOT, "pipeline", "configs", "kubeflow.yaml"))
    assert "WORKDIR /pipeline" in DOCKERFILE
    in_image = os.path.relpath(cfg.schema_path, "/pipeline")
    assert os.path.exists(os.path.join(PROJECT_ROOT, in_image)) and _in_image(in_image)


def test_the_image_checks_the_module_paths_the_pipeline_compiles_in():
    from pipeline.pipeline import RUN_FN
    assert RUN_FN.rpartition(".")[0] in DOCKERFILE


def test_the_image_runs_the_request_log_sink_it_is_deployed_for():
    """serving/k8s/log-sink/ runs `tfxp log-sink` in this image (the config's `image`)."""
    from serving import k8s_log_sink

    assert k8s_log_sink.COMMAND == ["tfxp", "log-sink"]
    with open(os.path.join(PROJECT_ROOT, "setup.py")) as f:
        assert '"tfxp=pipeline.cli:main"' in f.read()   # pip install . puts tfxp on PATH
    assert _in_image("serving/log_sink.py") and _in_image("serving/payload_events.py")
