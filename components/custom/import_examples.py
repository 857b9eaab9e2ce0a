"""ImportExampleGen with an executor that copies the TFRecord files instead of re-writing every record.

TFX's ImportExampleGen reads every record of ``input_base`` with Beam and writes it again (gzip,
level 6): on 2 cores that is 5.7 s for the sample, 22 s for 100k rows and 205 s for a million
(`bench/scale_bench.py`), the largest cost after Transform, to produce the same records. When the
input is already split (one input split per output split, as `tfxp data` writes it), the records
need no change: this executor copies each input file into ``Split-<name>/`` through TFX's fileio
(local disk, gs://, s3://), gzip'ing an uncompressed file on the way (a gzip'd TFRecord file is the
gzip stream of the plain file), and sets the artifact's properties as TFX's executor does
(split_names, payload_format, file_format tfrecords_gzip).

Everything else is ImportExampleGen's: the component spec and artifacts, its FileBasedDriver (which
fingerprints the input files at run time, so the cache follows the data on any orchestrator), the
splits by input pattern. Given an output_config that re-splits (hash buckets), it hands the work to
TFX's Beam executor, unchanged. Deliberate difference: the records are not parsed here; `tfxp run`
checks every record of every input file before the pipeline (pipeline/input_check.py), and on
Kubeflow a damaged file fails StatisticsGen, the first component to read it.
"""
from __future__ import annotations

import gzip
import logging
import os
import shutil
from typing import Any, Dict, List

from tfx import types
from tfx.components.example_gen import utils as example_gen_utils
from tfx.components.example_gen import write_split
from tfx.components.example_gen.import_example_gen import executor as beam_import_executor
from tfx.components.example_gen.import_example_gen.component import ImportExampleGen
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_executor, executor_spec
from tfx.dsl.io import fileio
from tfx.proto import example_gen_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import proto_utils

log = logging.getLogger(__name__)

GZIP_LEVEL = 1  # only for input files that are not compressed yet
_COPY_CHUNK = 8 << 20


def _is_gzip(path: str) -> bool:
    """By extension, as Beam's ReadFromTFRecord (compression AUTO) decides, which TFX's executor uses."""
    return path.endswith(".gz")


def copy_split(files: List[str], split_dir: str) -> None:
    """Copies ``files`` into ``split_dir`` as gzip'd TFRecord files."""
    fileio.makedirs(split_dir)
    for source in files:
        base = os.path.basename(source)
        target = os.path.join(split_dir, base if _is_gzip(source) else f"{base}.gz")
        if _is_gzip(source):
            fileio.copy(source, target, overwrite=True)
        else:
            with fileio.open(source, "rb") as src, fileio.open(target, "wb") as raw, \
                    gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=GZIP_LEVEL, mtime=0) as dst:
                shutil.copyfileobj(src, dst, _COPY_CHUNK)


class Executor(base_beam_executor.BaseBeamExecutor):
    """Copies each pre-split input split's files; re-splitting goes to TFX's Beam executor."""

    def Do(self, input_dict: Dict[str, List[types.Artifact]], output_dict: Dict[str, List[types.Artifact]],
           exec_properties: Dict[str, Any]) -> None:
        input_config = example_gen_pb2.Input()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.INPUT_CONFIG_KEY], input_config)
        output_config = example_gen_pb2.Output()
        proto_utils.json_to_proto(exec_properties[standard_component_specs.OUTPUT_CONFIG_KEY], output_config)
        # One input split without an output split_config (the batch scoring branch's rows) is copied too.
        if output_config.split_config.splits:
            log.info("output_config re-splits the input: TFX's Beam executor re-writes every record")
            beam_import_executor.Executor(self._context).Do(input_dict, output_dict, exec_properties)
            return

        examples = output_dict[standard_component_specs.EXAMPLES_KEY]
        artifact = artifact_utils.get_single_instance(examples)
        split_names = example_gen_utils.generate_output_split_names(input_config, output_config)
        artifact.split_names = artifact_utils.encode_split_names(split_names)
        input_base = exec_properties[standard_component_specs.INPUT_BASE_KEY]
        for split, name in zip(input_config.splits, split_names):
            files = sorted(f for f in fileio.glob(os.path.join(input_base, split.pattern)) if not fileio.isdir(f))
            if not files:
                raise RuntimeError(f"{input_base}: no files match split {name!r}'s pattern {split.pattern!r}")
            copy_split(files, artifact_utils.get_split_uri(examples, name))
            log.info("split %s: copied %d file(s) from %s", name, len(files), os.path.join(input_base, split.pattern))
        payload_format = exec_properties.get(standard_component_specs.OUTPUT_DATA_FORMAT_KEY)
        if payload_format:
            examples_utils.set_payload_format(artifact, payload_format)
        examples_utils.set_file_format(artifact, write_split.to_file_format_str(example_gen_pb2.FORMAT_TFRECORDS_GZIP))


class CopyingImportExampleGen(ImportExampleGen):
    """ImportExampleGen (same spec, driver and outputs) whose executor copies pre-split TFRecord files.
    Still a Beam component: the executor gets the Beam flags for the re-splitting case."""
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
