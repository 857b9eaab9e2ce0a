"""The Dockerfile can't be built here (no Docker engine): check what it promises statically."""
import os
import re

from pipeline.config import PROJECT_ROOT, load_config

DOCKERFILE = open(os.path.join(PROJECT_ROOT, "Dockerfile")).read()


def test_image_is_python_3_10():
    assert re.search(r"^FROM python:3\.10", DOCKERFILE, re.M)


def test_installs_the_frozen_environment_then_the_project():
    assert "pip install -r constraints.txt" in DOCKERFILE
    assert "pip install --no-deps ." in DOCKERFILE


def test_copies_every_package_setup_py_installs():
    from setuptools import find_packages
    packages = {p.split(".")[0] for p in find_packages(PROJECT_ROOT, include=["pipeline*", "components*",
                                                                               "serving*", "data*"])}
    for package in packages:
        assert re.search(rf"^COPY .*\b{package}\b", DOCKERFILE, re.M), package


def test_the_kubeflow_preset_schema_path_is_where_the_image_puts_it():
    cfg = load_config(os.path.join(PROJECT_ROOT, "pipeline", "configs", "kubeflow.yaml"))
    assert "WORKDIR /pipeline" in DOCKERFILE and "COPY pipeline ./pipeline" in DOCKERFILE
    in_image = os.path.relpath(cfg.schema_path, "/pipeline")
    assert os.path.exists(os.path.join(PROJECT_ROOT, in_image))
