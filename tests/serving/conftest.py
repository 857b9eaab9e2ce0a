"""Servers for the serving tests: `tfxp serve` processes on free loopback ports."""

import pytest

from tests.support import half_plus_two
from bench.model_server import ModelServerProcess
from tfxp.files import write_atomically

MODEL = "half_plus_two"
LABEL = "Version_Label"


def write_config(path, models):
    """A ModelServerConfig text proto: models = [(name, base_path, policy text, {label: version})]."""
    entries = []
    for name, base, policy, labels in models:
        label_text = "".join(f' version_labels {{ key: "{k}" value: {v} }}' for k, v in labels.items())
        entries.append(f'config {{ name: "{name}" base_path: "{base}" model_platform: "tensorflow" '
                       f'{policy}{label_text} }}')
    write_atomically(str(path), "model_config_list {\n  " + "\n  ".join(entries) + "\n}\n")
    return str(path)


@pytest.fixture(scope="session")
def half_plus_two_base(tmp_path_factory):
    """TF Serving's test layout: <base>/123/ holds saved_model_half_plus_two."""
    base = tmp_path_factory.mktemp("models") / MODEL
    half_plus_two.write(str(base / "123"))
    return str(base)


@pytest.fixture(scope="module")
def tfs(half_plus_two_base, tmp_path_factory):
    """As http_rest_api_handler_test.cc sets it up: version 123 under a `specific` policy, labelled
    Version_Label; Prometheus metrics enabled by a monitoring config."""
    tmp = tmp_path_factory.mktemp("tfs")
    config = write_config(tmp / "models.config", [
        (MODEL, half_plus_two_base, "model_version_policy { specific { versions: 123 } }", {LABEL: 123})])
    monitoring = tmp / "monitoring.config"
    monitoring.write_text('prometheus_config { enable: true, path: "/monitoring/prometheus/metrics" }\n')
    # Labels at start-up name versions not loaded yet: TF Serving needs this flag for that too.
    server = ModelServerProcess([f"--model_config_file={config}", f"--monitoring_config_file={monitoring}",
                                 "--allow_version_labels_for_unavailable_models=true"],
                                str(tmp), wait_for_model=MODEL)
    yield server
    assert server.stop() == 0, server.log()[-3000:]
