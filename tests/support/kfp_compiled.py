"""The shipped Kubeflow preset compiled once per test module (test_kubeflow.py, test_kubeflow_submit.py):
import the fixtures into the module that uses them."""
import os

import pytest
import yaml

from pipeline import kubeflow_runner
from pipeline.config import CONFIG_DIR, load_config

# The preset's schema path is inside the image (/pipeline/...): the one that exists here.
LOCAL_SCHEMA = f"schema_path={load_config().resolved_schema_path}"


@pytest.fixture(scope="module")
def kubeflow_config():
    # The shipped preset (gs:// root: compiling must not touch it), with a schema path that exists here.
    return load_config(os.path.join(CONFIG_DIR, "kubeflow.yaml"), overrides=[LOCAL_SCHEMA])


@pytest.fixture(scope="module")
def compiled(kubeflow_config, tmp_path_factory):
    path = kubeflow_runner.compile_pipeline(kubeflow_config, str(tmp_path_factory.mktemp("kfp") / "p.yaml"))
    with open(path) as f:
        return path, yaml.safe_load(f)
