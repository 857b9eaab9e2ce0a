"""`tfxp inspect PATH`: what a pushed model holds, read from its files.

PATH is one of:

* a SavedModel (a version dir: ``saved_model.pb``, ``variables/``, ``assets/``, ``assets.extra/``);
* a model base dir in TF Serving's layout, ``<base>/<numeric version>/``: a numeric dir holding
  neither ``saved_model.pb`` nor a ``.tflite`` file is listed as incomplete (Pusher copies
  ``saved_model.pb`` last, so it is a push in progress or a broken one);
* a pushed TFLite folder (``<variant>.tflite``, ``input_contract.json``, ``report.json``,
  ``transform_graph/``), or its base dir ``serving_model_lite/<name>/``; a single ``.tflite`` file.

Signatures come from parsing ``saved_model.pb``: the model is not loaded into TensorFlow. TFLite
inputs and outputs come from the interpreter (which is built, not run). Every file is read through
``tf.io.gfile``, so ``gs://`` paths work too.
"""
from __future__ import annotations

import argparse
import collections
import json
import posixpath
import re
import sys
from typing import Any, Dict, List, Optional, Tuple

from tfxp.errors import TfxpError
from tfxp import contract
from tfxp.saved_model import (ASSETS_DIR, EXTRA_ASSETS_DIR, SAVED_MODEL_PB, SAVED_MODEL_PBTXT, VARIABLES_DIR,
                               WARMUP_FILE_NAME, WARMUP_PATH, SavedModelParseError, read_saved_model,
                               warmup_records)

TFLITE_SUFFIX = ".tflite"
TRANSFORM_GRAPH_DIR = "transform_graph"
# Signature keys TensorFlow adds for itself (the init op): not callable, hidden like `loaded.signatures` does.
INTERNAL_SIGNATURES = ("__saved_model_init_op",)


class NotAModelError(ValueError, TfxpError):
    """The path holds no SavedModel, no model versions and no TFLite model."""


# -- files, through tf.io.gfile ------------------------------------------------------------------

def _join(*parts: str) -> str:
    return posixpath.join(*parts)  # gfile paths use '/', also for gs://


def _listdir(path: str) -> List[str]:
    import tensorflow as tf

    return sorted(name.rstrip("/") for name in tf.io.gfile.listdir(path))  # gs:// lists dirs as 'name/'


def _files(path: str) -> List[str]:
    """The files directly in ``path`` (none when it is not a directory)."""
    import tensorflow as tf

    if not tf.io.gfile.isdir(path):
        return []
    return [name for name in _listdir(path) if not tf.io.gfile.isdir(_join(path, name))]


def _size(path: str) -> int:
    import tensorflow as tf

    return tf.io.gfile.stat(path).length


def _tree_size(path: str) -> Tuple[int, int]:
    """(files, bytes) of everything under ``path``."""
    import tensorflow as tf

    files = [_join(root, name) for root, _, names in tf.io.gfile.walk(path) for name in names]
    return len(files), sum(_size(f) for f in files)


def _count_lines(path: str) -> int:
    import tensorflow as tf

    lines, last = 0, b"\n"
    with tf.io.gfile.GFile(path, "rb") as f:
        while chunk := f.read(1 << 20):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    return lines + (last != b"\n")  # a last line without its newline


def _version_of(path: str) -> Optional[str]:
    name = posixpath.basename(path.rstrip("/"))
    return name if name.isdigit() else None


def _kind_of_dir(path: str) -> Optional[str]:
    """'saved_model', 'tflite' or None."""
    files = _files(path)
    if SAVED_MODEL_PB in files or SAVED_MODEL_PBTXT in files:
        return "saved_model"
    if any(name.endswith(TFLITE_SUFFIX) for name in files):
        return "tflite"
    return None


# -- the whole path ------------------------------------------------------------------------------

def inspect_path(path: str) -> Dict[str, Any]:
    """What ``path`` holds, as a JSON-ready dict with ``kind`` 'model_base', 'saved_model' or 'tflite'.

    Raises NotAModelError when it holds none of them.
    """
    import tensorflow as tf

    path = path.rstrip("/") or "/"
    if not tf.io.gfile.exists(path):
        raise NotAModelError(f"{path}: no such file or directory")
    if not tf.io.gfile.isdir(path):
        if path.endswith(TFLITE_SUFFIX):
            return inspect_tflite(posixpath.dirname(path), [posixpath.basename(path)])
        if posixpath.basename(path) in (SAVED_MODEL_PB, SAVED_MODEL_PBTXT):
            return inspect_saved_model(posixpath.dirname(path))
        raise NotAModelError(f"{path}: not a model: a file, expected a model directory or a .tflite file")
    kind = _kind_of_dir(path)
    if kind == "saved_model":
        return inspect_saved_model(path)
    if kind == "tflite":
        return inspect_tflite(path)
    return inspect_model_base(path)


def inspect_model_base(path: str) -> Dict[str, Any]:
    """Every complete numeric version under ``path``, oldest first, and the incomplete ones."""
    import tensorflow as tf

    numeric = sorted((name for name in _listdir(path) if name.isdigit() and tf.io.gfile.isdir(_join(path, name))),
                     key=int)
    versions, incomplete = [], []
    for name in numeric:
        version_dir = _join(path, name)
        kind = _kind_of_dir(version_dir)
        if kind == "saved_model":
            versions.append(inspect_saved_model(version_dir))
        elif kind == "tflite":
            versions.append(inspect_tflite(version_dir))
        else:
            incomplete.append(name)
    if not versions:
        found = (f"numeric version dirs ({', '.join(incomplete)}) but none holds {SAVED_MODEL_PB} or a "
                 f"{TFLITE_SUFFIX} file (incomplete pushes?)" if incomplete
                 else f"no {SAVED_MODEL_PB}, no numeric version dirs, no {TFLITE_SUFFIX} files")
        raise NotAModelError(f"{path}: not a model: {found}; expected a SavedModel dir, a model base dir "
                             f"<base>/<version>/{SAVED_MODEL_PB}, or a pushed TFLite folder")
    return {"path": path, "kind": "model_base", "versions": versions, "incomplete_versions": incomplete}


# -- SavedModel ----------------------------------------------------------------------------------

def _read_saved_model_proto(path: str):
    try:
        return read_saved_model(path)
    except SavedModelParseError as e:
        raise NotAModelError(str(e)) from e


def _shape(tensor_shape) -> Optional[List[int]]:
    """Dims with -1 for unknown ones; None for an unknown rank."""
    return None if tensor_shape.unknown_rank else [int(d.size) for d in tensor_shape.dim]


def _tensor_info(info) -> Dict[str, Any]:
    import tensorflow as tf

    entry = {"dtype": tf.dtypes.as_dtype(info.dtype).name if info.dtype else "invalid",
             "shape": _shape(info.tensor_shape)}
    encoding = info.WhichOneof("encoding")
    if encoding == "name":
        entry["tensor"] = info.name
    elif encoding:
        entry["encoding"] = encoding  # coo_sparse or composite_tensor
    return entry


def _signatures(signature_def) -> Dict[str, Any]:
    """serving_default first, then by name; inputs and outputs by name."""
    import tensorflow as tf

    default = tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY
    keys = sorted((k for k in signature_def if k not in INTERNAL_SIGNATURES), key=lambda k: (k != default, k))
    return {key: {"method": signature_def[key].method_name,
                  "inputs": {n: _tensor_info(t) for n, t in sorted(signature_def[key].inputs.items())},
                  "outputs": {n: _tensor_info(t) for n, t in sorted(signature_def[key].outputs.items())}}
            for key in keys}


def _vocabularies(assets_dir: str) -> List[Dict[str, Any]]:
    """Each asset file (tf.Transform vocabularies: one entry a line) with its size and line count."""
    return [{"file": name, "bytes": _size(_join(assets_dir, name)), "lines": _count_lines(_join(assets_dir, name))}
            for name in _files(assets_dir)]


def _warmup(version_dir: str) -> Dict[str, Any]:
    """Record count of a version's warmup file, and how many of each PredictionLog kind (predict_log, ...)."""
    import tensorflow as tf
    from google.protobuf import message
    from tensorflow_serving.apis import prediction_log_pb2

    kinds: Dict[str, int] = collections.Counter()
    error = None
    try:
        for record in warmup_records(version_dir):
            try:
                kind = prediction_log_pb2.PredictionLog.FromString(record).WhichOneof("log_type")
            except message.DecodeError:
                kind = None
            kinds[kind or "not_a_prediction_log"] += 1
    except tf.errors.OpError as e:
        reason = re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:.*", "", e.message, flags=re.S)  # drop TF's op context
        error = f"unreadable after {sum(kinds.values())} records: {reason}"
    if not kinds and not error and _size(_join(version_dir, WARMUP_PATH)):
        error = "not a TFRecord file"  # shorter than one record header: TFRecordDataset just ends
    warmup = {"records": sum(kinds.values()), "kinds": dict(sorted(kinds.items()))}
    return {**warmup, "error": error} if error else warmup


def inspect_saved_model(path: str) -> Dict[str, Any]:
    """Tags and signatures of each meta graph, assets, warmup requests and variables size."""
    proto = _read_saved_model_proto(path)
    extra_dir = _join(path, EXTRA_ASSETS_DIR)
    extra = [{"file": name, "bytes": _size(_join(extra_dir, name))} for name in _files(extra_dir)]
    warmup = (dict(file=WARMUP_PATH, **_warmup(path)) if any(f["file"] == WARMUP_FILE_NAME for f in extra) else None)
    files, size = _tree_size(_join(path, VARIABLES_DIR))
    return {
        "path": path, "kind": "saved_model", "version": _version_of(path),
        "meta_graphs": [{"tags": list(graph.meta_info_def.tags),
                         "tensorflow_version": graph.meta_info_def.tensorflow_version,
                         "signatures": _signatures(graph.signature_def)}
                        for graph in proto.meta_graphs],
        "assets": _vocabularies(_join(path, ASSETS_DIR)),
        "extra_assets": extra,
        "warmup": warmup,
        "variables": {"files": files, "bytes": size},
    }


# -- TFLite --------------------------------------------------------------------------------------

def _tflite_tensors(details: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    """name -> dtype, shape (-1 where resizable) and, for quantized tensors, real = (q - zero_point) * scale."""
    import numpy as np

    out = {}
    for name, d in sorted(details.items()):
        entry = {"dtype": np.dtype(d["dtype"]).name, "shape": [int(x) for x in d["shape_signature"]]}
        scales, zero_points = d["quantization_parameters"]["scales"], d["quantization_parameters"]["zero_points"]
        if len(scales) == 1:
            entry["quantization"] = {"scale": float(scales[0]), "zero_point": int(zero_points[0])}
        elif len(scales) > 1:  # per channel
            entry["quantization"] = {"scale": [float(s) for s in scales], "zero_point": [int(z) for z in zero_points],
                                     "axis": int(d["quantization_parameters"]["quantized_dimension"])}
        out[name] = entry
    return out


def _tflite_model(path: str) -> Dict[str, Any]:
    """Size and, per signature, inputs and outputs; a model without signatures: its graph's inputs and outputs."""
    import tensorflow as tf

    with tf.io.gfile.GFile(path, "rb") as f:
        content = f.read()
    entry: Dict[str, Any] = {"file": posixpath.basename(path), "bytes": len(content)}
    try:  # built, never run: no delegate needed
        interpreter = tf.lite.Interpreter(
            model_content=content,
            experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    except (ValueError, RuntimeError) as e:
        entry["error"] = f"the TFLite interpreter cannot read it: {e}"
        return entry
    keys = sorted(interpreter.get_signature_list())
    if keys:
        runners = {key: interpreter.get_signature_runner(key) for key in keys}
        entry["signatures"] = {key: {"inputs": _tflite_tensors(runner.get_input_details()),
                                     "outputs": _tflite_tensors(runner.get_output_details())}
                               for key, runner in runners.items()}
    else:
        entry["inputs"] = _tflite_tensors({d["name"]: d for d in interpreter.get_input_details()})
        entry["outputs"] = _tflite_tensors({d["name"]: d for d in interpreter.get_output_details()})
    return entry


def _read_json(path: str) -> Optional[Dict[str, Any]]:
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "r") as f:
        return json.load(f)


def inspect_tflite(path: str, files: Optional[List[str]] = None) -> Dict[str, Any]:
    """Each ``.tflite`` model in ``path`` (or only ``files``), with what report.json says of it."""
    import tensorflow as tf

    files = files or [name for name in _files(path) if name.endswith(TFLITE_SUFFIX)]
    report = _read_json(_join(path, contract.TFLITE_REPORT_FILE)) or {}
    evaluated = report.pop("variants", {})
    models = {}
    for name in files:
        variant = name[:-len(TFLITE_SUFFIX)]
        models[variant] = _tflite_model(_join(path, name))
        if variant in evaluated:
            models[variant]["evaluation"] = evaluated[variant]
    transform_fn = _join(path, TRANSFORM_GRAPH_DIR, "transform_fn")
    return {
        "path": path, "kind": "tflite", "version": _version_of(path),
        "models": models,
        "input_contract": contract.TFLITE_CONTRACT_FILE if tf.io.gfile.exists(_join(path, contract.TFLITE_CONTRACT_FILE)) else None,
        "evaluation": report or None,
        # The tf.Transform graph the app uses to turn raw features into the models' inputs.
        "transform_graph": ({"path": TRANSFORM_GRAPH_DIR, "assets": _vocabularies(_join(transform_fn, ASSETS_DIR))}
                            if tf.io.gfile.isdir(transform_fn) else None),
    }


# -- readable ------------------------------------------------------------------------------------

def _human_bytes(size: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def _format_tensors(title: str, tensors: Dict[str, Any], indent: str) -> List[str]:
    lines = [f"{indent}{title}:"]
    width = max((len(name) for name in tensors), default=0)
    for name, t in tensors.items():
        shape = "unknown rank" if t["shape"] is None else str(t["shape"])
        line = f"{indent}  {name:<{width}}  {t['dtype']:<8} {shape}"
        if "encoding" in t:
            line += f"  ({t['encoding']})"
        if "quantization" in t:
            q = t["quantization"]
            line += (f"  quantized: scale {q['scale']:.6g}, zero_point {q['zero_point']}" if "axis" not in q
                     else f"  quantized per channel: {len(q['scale'])} scales on axis {q['axis']}")
        lines.append(line.rstrip())
    if not tensors:
        lines[-1] += " none"
    return lines


def _format_files(title: str, files: List[Dict[str, Any]], indent: str) -> List[str]:
    if not files:
        return [f"{indent}{title}: none"]
    lines = [f"{indent}{title}:"]
    width = max(len(f["file"]) for f in files)
    for f in files:
        line = f"{indent}  {f['file']:<{width}}  {_human_bytes(f['bytes']):>10}"
        if "lines" in f:
            line += f"  {f['lines']:>6} lines"
        lines.append(line)
    return lines


def _metrics(metrics: Dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.4f}" for name, value in metrics.items())


def _format_saved_model(d: Dict[str, Any], indent: str) -> List[str]:
    lines = [f"{indent}SavedModel {d['path']}" + (f"  (version {d['version']})" if d["version"] else "")]
    for graph in d["meta_graphs"]:
        lines.append(f"{indent}  tags: {', '.join(graph['tags']) or '-'}  (TensorFlow {graph['tensorflow_version']})")
        for key, sig in graph["signatures"].items():
            lines.append(f"{indent}  signature '{key}'" + (f" ({sig['method']})" if sig["method"] else ""))
            lines += _format_tensors("inputs", sig["inputs"], indent + "    ")
            lines += _format_tensors("outputs", sig["outputs"], indent + "    ")
    lines += _format_files(f"{ASSETS_DIR}/ (vocabularies)", d["assets"], indent + "  ")
    if d["extra_assets"]:
        lines += _format_files(f"{EXTRA_ASSETS_DIR}/", d["extra_assets"], indent + "  ")
    warmup = d["warmup"]
    if warmup:
        kinds = ", ".join(f"{kind} {count}" for kind, count in warmup["kinds"].items())
        lines.append(f"{indent}  warmup requests: {warmup['records']}" + (f" ({kinds})" if kinds else "")
                     + (f"; {warmup['error']}" if "error" in warmup else ""))
    else:
        lines.append(f"{indent}  warmup requests: none (no {WARMUP_PATH})")
    lines.append(f"{indent}  {VARIABLES_DIR}/: {d['variables']['files']} files, {_human_bytes(d['variables']['bytes'])}")
    return lines


def _format_tflite(d: Dict[str, Any], indent: str) -> List[str]:
    lines = [f"{indent}TFLite {d['path']}" + (f"  (version {d['version']})" if d["version"] else "")]
    evaluation = d["evaluation"]
    if evaluation:
        saved = evaluation.get("saved_model", {})
        lines.append(f"{indent}  report.json: {evaluation.get('task', '?')}, label {evaluation.get('label', '?')}, "
                     f"{evaluation.get('examples', '?')} eval examples; SavedModel "
                     f"{_metrics(saved.get('metrics', {}))}, blessed {'yes' if saved.get('blessed') else 'no'}")
    for model in d["models"].values():
        line = f"{indent}  {model['file']}  {_human_bytes(model['bytes'])}"
        if "evaluation" in model:
            e = model["evaluation"]
            line += f"  {_metrics(e.get('metrics', {}))}, blessed {'yes' if e.get('blessed') else 'no'}"
        lines.append(line)
        if "error" in model:
            lines.append(f"{indent}    error: {model['error']}")
        for key, sig in model.get("signatures", {}).items():
            lines.append(f"{indent}    signature '{key}'")
            lines += _format_tensors("inputs", sig["inputs"], indent + "      ")
            lines += _format_tensors("outputs", sig["outputs"], indent + "      ")
        if "inputs" in model:
            lines.append(f"{indent}    (no signatures: the graph's tensors)")
            lines += _format_tensors("inputs", model["inputs"], indent + "    ")
            lines += _format_tensors("outputs", model["outputs"], indent + "    ")
    lines.append(f"{indent}  input contract: {d['input_contract'] or 'none'}")
    if d["transform_graph"]:
        lines += _format_files(f"{TRANSFORM_GRAPH_DIR}/ vocabularies", d["transform_graph"]["assets"], indent + "  ")
    else:
        lines.append(f"{indent}  {TRANSFORM_GRAPH_DIR}/: none")
    return lines


def _format_one(d: Dict[str, Any], indent: str = "") -> List[str]:
    return _format_saved_model(d, indent) if d["kind"] == "saved_model" else _format_tflite(d, indent)


def format_report(d: Dict[str, Any]) -> str:
    """The readable form of ``inspect_path``'s dict."""
    if d["kind"] != "model_base":
        return "\n".join(_format_one(d))
    names = [v["version"] for v in d["versions"]]
    lines = [f"Model base {d['path']}: {len(names)} version{'s' if len(names) != 1 else ''} "
             f"({', '.join(names)}), latest {names[-1]}"]
    if d["incomplete_versions"]:
        lines.append(f"  incomplete (no {SAVED_MODEL_PB} or {TFLITE_SUFFIX} file): "
                     f"{', '.join(d['incomplete_versions'])}")
    for version in d["versions"]:
        lines.append("")
        lines += _format_one(version, "  ")
    return "\n".join(lines)


# -- command line --------------------------------------------------------------------------------

def add_inspect_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="a SavedModel or version dir, a model base dir (<base>/<version>/), "
                                     "or a pushed TFLite folder; local or gs://")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the readable report")


def run_inspect(args: argparse.Namespace) -> int:
    """Print the report; 2 with a one-line error on stderr when the path is not a model."""
    try:
        report = inspect_path(args.path)
    except NotAModelError as e:
        message = " ".join(str(e).splitlines())  # one line, whatever a parser's error said
        print(f"tfxp inspect: error: {message}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
