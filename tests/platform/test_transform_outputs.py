"""Transform, as the pipeline wires it, writes what its readers read and nothing else.

TFX's Transform also computes pre- and post-transform statistics (with an anomalies check against
the schema tf.Transform infers from its own output) and writes an analyzer cache by default;
nothing in the pipeline reads either, and they cost about a quarter of Transform's time on the
sample (bench/transform_bench.py, docs/transform.md)."""
import pytest

from pipeline.config import load_config
from pipeline.pipeline import create_pipeline


@pytest.fixture(scope="module")
def wired(tmp_path_factory):
    cfg = load_config(overrides=[f"output_root={tmp_path_factory.mktemp('root')}"])
    components = create_pipeline(cfg).components
    return next(c for c in components if c.id == "Transform"), components


def test_every_transform_output_is_read_by_a_later_component(wired):
    transform, components = wired
    read = {id(channel) for c in components if c is not transform for channel in c.inputs.values()}
    assert {key for key, channel in transform.outputs.items() if id(channel) in read} == set(transform.outputs)


def test_transform_outputs_the_transform_graph_and_the_transformed_examples(wired):
    transform, _ = wired
    assert set(transform.outputs) == {"transform_graph", "transformed_examples"}


def test_transform_computes_no_statistics(wired):
    # Without this flag TFX's executor computes them anyway, into the transform graph's directory.
    transform, _ = wired
    assert transform.exec_properties["disable_statistics"] == 1
