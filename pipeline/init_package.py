"""`tfxp init NAME --csv CSV --label COLUMN`: a new data scientist's package, ready to run, from a CSV.

Writes, beside ``components/`` (or into ``--dir``):

    NAME/__init__.py, features.py, preprocessing.py, model.py   the package; FEATURES and TASK inferred
                         from the CSV (data/feature_inference.py), model.py a copy of the sample's
    NAME/config.yaml     pipeline/configs/local.yaml with this dataset's keys (pipeline_name: NAME)
    NAME/schema.pbtxt    a starting schema inferred by TFDV (pipeline/schema_tool.py, as `tfxp schema`)
    <output_root>/data/NAME/{train,eval}/   the CSV as TFRecords (data/tfrecords.py, as `tfxp data`)

It refuses, with one line and nothing written, a name that is not a new package name (InitError), a
package or data folder that exists (InitError), and a CSV it cannot infer from (tfrecords.DataError).
Everything is written into temporary folders first, then renamed into place.
"""
from __future__ import annotations

import dataclasses
import json
import keyword
import os
import re
import runpy
import shutil
import tempfile
import textwrap
from typing import Dict, Optional

import yaml

from components.core.feature import BUCKETIZED, CATEGORICAL, VOCABULARY
from components.core.task import BinaryClassification, MulticlassClassification, Task
from components.core.user_code import REQUIRED_MODULES, UserCode
from data import feature_inference
from pipeline.config import CONFIG_DIR, PROJECT_ROOT, ConfigError

PACKAGE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")  # a Python identifier that is also a pipeline_name
CONFIG_TEMPLATE = os.path.join(CONFIG_DIR, "local.yaml")
SAMPLE_MODEL = os.path.join(PROJECT_ROOT, "components", "model.py")
CONFIG_FILE, SCHEMA_FILE = "config.yaml", "schema.pbtxt"


class InitError(ConfigError):
    """tfxp init cannot write the package as asked; nothing was written."""


@dataclasses.dataclass(frozen=True)
class InitResult:
    name: str
    package_dir: str
    config_path: str
    schema_path: str
    data_root: str
    examples: Dict[str, int]  # per split
    inference: feature_inference.Inference
    importable: bool  # the package's folder is on the path every tfxp process gets


def _under_project(path: str) -> str:
    """A path as the config holds it: relative to the project root when inside it (as the config resolves it)."""
    path = os.path.abspath(path)
    relative = os.path.relpath(path, PROJECT_ROOT)
    return path if relative.startswith("..") else relative


def _resolved(config_path: str) -> str:
    return config_path if os.path.isabs(config_path) else os.path.join(PROJECT_ROOT, config_path)


def _shown(path: str) -> str:
    """A path as the user types it from here: relative to the working directory when inside it."""
    relative = os.path.relpath(path)
    return os.path.abspath(path) if relative.startswith("..") else relative


def check_name(name: str, parent: str) -> None:
    if not PACKAGE_NAME.fullmatch(name) or keyword.iskeyword(name):
        raise InitError(f"package name {name!r}: expected a Python identifier (a letter, then letters, digits or "
                        f"'_'), e.g. penguins")
    if not os.path.isdir(parent):
        raise InitError(f"--dir {parent}: no such folder")
    _refuse_existing(os.path.join(parent, name))
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is not None:
        where = spec.origin or ", ".join(spec.submodule_search_locations or [])
        raise InitError(f"package name {name!r}: a module of that name is importable already ({where}); "
                        f"the new package would shadow it or be shadowed: pick another name")


def _refuse_existing(*paths: str) -> None:
    for path in paths:
        if os.path.lexists(path):
            raise InitError(f"{path} exists: tfxp init writes only new files (pick another name, or move it away)")


def _literal(value) -> str:
    """A Python (and YAML) string literal: double quotes, every character as it is."""
    return json.dumps(value, ensure_ascii=False)


# -- features.py -------------------------------------------------------------------------------------------
def _constant(value: str) -> str:
    return value.upper()  # the dtype and kind constants of components.core are named after their values


def _feature_line(column: feature_inference.InferredColumn) -> str:
    feature = column.feature
    if feature is None:
        return f"    # {_literal(column.name)}: {column.reason}"
    args = [_literal(feature.name), _constant(feature.dtype), _constant(feature.kind)]
    if feature.kind in (CATEGORICAL, BUCKETIZED):
        args.append(f"num_buckets={feature.num_buckets}")
    if feature.kind == VOCABULARY:
        args.append(f"vocab_size={feature.vocab_size}")
    return f"    Feature({', '.join(args)}),  # {column.reason}"


def _tuple(values) -> str:
    return "(" + ", ".join(_literal(v) for v in values) + ("," if len(values) == 1 else "") + ")"


def _task_lines(inference: feature_inference.Inference) -> list:
    task, label = inference.task, _literal(inference.task.label)
    if isinstance(task, BinaryClassification):
        first, second = inference.label_values
        return ["# The label column's two values in id order: the first is 0, the second 1 (the model predicts",
                f"# P({task.label} = {second})). preprocessing.py maps them; swap them to predict the other one.",
                f"LABEL_VALUES = {_tuple(inference.label_values)}",
                "",
                f"TASK = BinaryClassification(label={label})"]
    if isinstance(task, MulticlassClassification):
        return [f"# What to predict: one of {task.num_classes} classes of {task.label}, ids in this order "
                f"(preprocessing.py maps the", "# column's values to them).",
                f"TASK = MulticlassClassification(label={label}, class_names={_tuple(task.class_names)})"]
    return [f"# What to predict: the value of {task.label} (preprocessing.py reads it as a float).",
            f"TASK = Regression(label={label})"]


def _import_lines(module: str, names) -> list:
    head = f"from {module} import "
    text = ", ".join(names)
    if len(head + text) <= 110:
        return [head + text]
    wrapped = textwrap.wrap(text, 110 - len(head) - 1)
    lines = [f"{head}({wrapped[0]}"] + [" " * (len(head) + 1) + line for line in wrapped[1:]]
    return lines[:-1] + [lines[-1] + ")"]


def render_features(inference: feature_inference.Inference, name: str) -> str:
    features = inference.features
    names = sorted({_constant(f.dtype) for f in features} | {_constant(f.kind) for f in features})
    names += ["Feature", type(inference.task).__name__]
    slices = ", ".join(_literal(s) for s in inference.slice_features)
    lines = [
        f'"""YOURS: what the data is and what to predict, for {os.path.basename(inference.csv_path)} '
        f'({inference.rows} rows), as `tfxp init` inferred it.',
        "",
        "Everything else derives from this file: `tfxp data` types the CSV's columns from FEATURES, the",
        "default preprocessing transforms each feature by its kind, the model gets one input per model",
        "feature, the serving signature parses the raw features listed here, and TASK decides the model's",
        "head and loss, the Evaluator's metrics and gate, the TFLite checks and how predictions are printed.",
        "",
        "Check what was guessed (the comment on each line gives the evidence; the rule is in",
        "data/feature_inference.py):",
        "* a kind is yours to change: NUMERIC, BUCKETIZED (num_buckets=...), CATEGORICAL, VOCABULARY, UNUSED;",
        "  e.g. an integer id with many values came out NUMERIC: make it VOCABULARY or UNUSED;",
        "* a changed dtype or a new column needs the data converted again and the schema's entry:",
        f"  `tfxp data --config {name}/{CONFIG_FILE}`, then edit {SCHEMA_FILE} (beside this file), or rewrite it",
        f"  with `tfxp schema --config {name}/{CONFIG_FILE}` and curate it again.",
        '"""',
        *_import_lines("components.core", names),
        "",
        "FEATURES = [",
        *[_feature_line(c) for c in inference.columns],
        "]",
        "",
        *_task_lines(inference),
        "",
        "# The Evaluator reports metrics per value of these features too (the config may name others).",
        f"SLICE_FEATURES = [{slices}]",
    ]
    return "\n".join(lines) + "\n"


# -- preprocessing.py --------------------------------------------------------------------------------------
def _label_fn(task: Task) -> list:
    column = _literal(task.label)
    if isinstance(task, BinaryClassification):
        return [f'    """{task.label}: LABEL_VALUES[0] -> 0, LABEL_VALUES[1] -> 1 (another value -> -1)."""',
                f"    return transforms.class_index(inputs[{column}], features.LABEL_VALUES)"]
    if isinstance(task, MulticlassClassification):
        return [f'    """{task.label} -> its class id: its position in TASK.class_names (another value -> -1)."""',
                f"    return transforms.class_index(inputs[{column}], features.TASK.class_names)"]
    return [f'    """{task.label} as a float (an empty cell -> 0.0; tfxp init found none)."""',
            f"    return transforms.fill_missing(transforms.as_float(inputs[{column}]), 0.0)"]


def render_preprocessing(task: Task) -> str:
    lines = [
        '"""YOURS: preprocessing_fn, the entry point Transform calls (tf.Transform); written by `tfxp init`.',
        "",
        "Every model input is transformed by its kind in features.py (see components/core/transforms.py:",
        "z-score, quantile buckets, ids, vocabularies; missing values filled explicitly). Replace an",
        "entry of `outputs` to transform a feature your own way. The label is computed here: an int64",
        "0/1 for binary classification, an int64 class id for multi-class, a float for regression.",
        '"""',
        "from components.core import transforms",
        "",
        "from . import features",
        "",
        "",
        "def label_fn(inputs):",
        *_label_fn(task),
        "",
        "",
        "def preprocessing_fn(inputs):",
        '    """Raw features (dict of tensors) -> transformed model inputs and the label."""',
        "    outputs = transforms.transform_by_kind(inputs, features.FEATURES)",
        "    outputs[features.TASK.label_key] = label_fn(inputs)",
        "    return outputs",
    ]
    return "\n".join(lines) + "\n"


# -- config.yaml -------------------------------------------------------------------------------------------
_YAML_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_]+):(?P<value>[^#]*?)(?P<comment>\s*#.*)?$")


def _yaml_value(value) -> str:
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9_./-]+", value) and yaml.safe_load(value) == value:
        return value
    return _literal(value)


def _gate_comments(task: Task) -> Dict[str, str]:
    metric = task.metric(task.GATE_METRIC)
    bound, example = ("at least", "0.8") if metric.higher_is_better else ("at most", "<an error you accept>")
    worse = "1 point" if metric.bounded else "1%"
    return {"evaluation.gate_metric": f"null: the task's ({metric.name})",
            "evaluation.threshold": f"null: none yet; e.g. {example}: the candidate's {metric.name} must be {bound} this",
            "evaluation.max_degradation": f"... and at most this much (0.01: {worse}) worse than the last blessed "
                                          f"model's"}


def render_config(values: Dict[str, object], comments: Dict[str, str], header: str) -> str:
    """pipeline/configs/local.yaml with ``values`` (dotted keys for sections) and their comments replaced."""
    with open(CONFIG_TEMPLATE) as f:
        lines = f.read().splitlines()
    while lines and lines[0].startswith("#"):  # the sample's own header
        lines.pop(0)
    out, section = [header.rstrip()], None
    for line in lines:
        match = _YAML_LINE.match(line)
        if match:
            indent, key, value = match["indent"], match["key"], match["value"].strip()
            if not indent:
                section = None if value else key
            path = f"{section}.{key}" if indent and section else key
            if path in values or path in comments:
                new = f"{indent}{key}: {_yaml_value(values[path]) if path in values else value}"
                comment = f"# {comments[path]}" if path in comments else (match["comment"] or "").strip()
                # The comment where the template had it, or two spaces after the value.
                column = line.find("#", match.start("comment")) if match["comment"] else len(new) + 2
                line = f"{new.ljust(column - 1)} {comment}" if comment else new
        out.append(line)
    text = "\n".join(out) + "\n"
    loaded = yaml.safe_load(text)
    for path, expected in values.items():
        node = loaded
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node != expected:
            raise RuntimeError(f"{CONFIG_TEMPLATE}: tfxp init found no key {path} to set (the template changed?)")
    return text


def _config_text(name: str, csv_path: str, data_root: str, output_root: str, schema_path: str, task: Task) -> str:
    values = {"pipeline_name": name, "user_package": name, "source_csv": _under_project(csv_path),
              "data_root": data_root, "output_root": output_root, "schema_path": schema_path,
              "evaluation.threshold": None}
    header = (f"# Written by `tfxp init` for {_under_project(csv_path)}: every key of pipeline/configs/local.yaml,\n"
              f"# with this dataset's package, data and schema. Start the loop: tfxp dev --config {name}/{CONFIG_FILE}\n"
              f"# Any key can be overridden on the command line: --set training.train_steps=200")
    comments = {"schema_path": "a starting schema inferred by tfxp init: curate it (null: infer with SchemaGen)",
                "evaluation.slice_features": f"null: SLICE_FEATURES in {name}/features.py", **_gate_comments(task)}
    return render_config(values, comments, header)


# -- the command -------------------------------------------------------------------------------------------
def _check_rendered(features_path: str, inference: feature_inference.Inference) -> None:
    """The written features.py declares exactly what was inferred (and the data is converted with)."""
    declared = runpy.run_path(features_path)
    label_values = inference.label_values if isinstance(inference.task, BinaryClassification) else ()
    if (list(declared["FEATURES"]) != inference.features or declared["TASK"] != inference.task
            or tuple(declared["SLICE_FEATURES"]) != inference.slice_features
            or tuple(declared.get("LABEL_VALUES", ())) != label_values):
        raise RuntimeError(f"{features_path}: tfxp init wrote a features.py that differs from what it inferred")


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _first_missing(path: str) -> Optional[str]:
    """The outermost folder of ``path`` that does not exist yet (what makedirs would create), or None."""
    missing = None
    while not os.path.exists(path):
        missing, path = path, os.path.dirname(path)
    return missing


def _stage_package(staged: str, name: str, inference, config_text: str) -> None:
    os.mkdir(staged)
    with open(SAMPLE_MODEL) as f:
        model_source = f.read()
    files = {"__init__": f'"""{name}: a data scientist\'s package for '
                         f'{os.path.basename(inference.csv_path)}, written by `tfxp init`."""\n',
             "features": render_features(inference, name),
             "preprocessing": render_preprocessing(inference.task),
             "model": model_source}
    assert set(REQUIRED_MODULES) <= set(files)
    for module, text in files.items():
        _write(os.path.join(staged, f"{module}.py"), text)
    _write(os.path.join(staged, CONFIG_FILE), config_text)
    _check_rendered(os.path.join(staged, "features.py"), inference)


def init_package(name: str, csv_path: str, label: str, parent: Optional[str] = None,
                 output_root: str = "runs") -> InitResult:
    """Writes the package NAME into ``parent`` (default: the project root) and its data under ``output_root``."""
    from data import tfrecords
    from pipeline import schema_tool

    parent = os.path.abspath(parent or PROJECT_ROOT)
    package_dir = os.path.join(parent, name)
    data_root = os.path.join(output_root, "data", name)  # as the config holds it
    data_dir = _resolved(data_root)
    check_name(name, parent)
    _refuse_existing(data_dir)
    inference = feature_inference.infer(csv_path, label)
    schema_path = _under_project(os.path.join(package_dir, SCHEMA_FILE))
    config_text = _config_text(name, csv_path, data_root, output_root, schema_path, inference.task)

    created = _first_missing(os.path.dirname(data_dir))
    os.makedirs(os.path.dirname(data_dir), exist_ok=True)
    package_holder = tempfile.mkdtemp(prefix=f".{name}.init-", dir=parent)
    data_holder = tempfile.mkdtemp(prefix=f".{name}.init-", dir=os.path.dirname(data_dir))
    done = False
    try:
        staged, records = os.path.join(package_holder, name), os.path.join(data_holder, "records")
        _stage_package(staged, name, inference, config_text)
        converted = tfrecords.convert_csv(csv_path, records, features=inference.features,
                                          shards=yaml.safe_load(config_text)["shards"])
        user = UserCode(package=name, directory=package_dir, features=tuple(inference.features),
                        task=inference.task, slice_features=inference.slice_features)
        schema = schema_tool.infer_schema(records, user)
        schema_tool.write_schema(schema, os.path.join(staged, SCHEMA_FILE), data_root)
        _refuse_existing(package_dir, data_dir)  # again: another process may have made one meanwhile
        os.rename(records, data_dir)
        try:
            os.rename(staged, package_dir)
        except BaseException:
            os.rename(data_dir, records)
            raise
        done = True
    finally:
        shutil.rmtree(package_holder, ignore_errors=True)
        shutil.rmtree(data_holder, ignore_errors=True)
        if not done and created:
            shutil.rmtree(created, ignore_errors=True)
    python_path = [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return InitResult(name, package_dir, os.path.join(package_dir, CONFIG_FILE), os.path.join(package_dir, SCHEMA_FILE),
                      data_dir, dict(converted.rows), inference,
                      importable=parent == PROJECT_ROOT or parent in python_path)


def describe(result: InitResult) -> str:
    """What tfxp init prints: what it inferred, what it wrote, and the command that starts the loop."""
    inference, task = result.inference, result.inference.task
    classes = f" ({len(inference.label_values)} classes: {', '.join(inference.label_values)})" \
        if isinstance(task, MulticlassClassification) else \
        f" (0: {inference.label_values[0]}, 1: {inference.label_values[1]})" if inference.label_values else ""
    width = max(len(c.name) for c in inference.columns)
    lines = [f"Inferred from {_shown(inference.csv_path)} ({inference.rows} rows): {task.describe()}{classes}"]
    for column in inference.columns:
        feature = column.feature
        kind = f"{feature.dtype:<6} {feature.kind:<12}" if feature else f"{'-':<6} {'left out':<12}"
        lines.append(f"  {column.name:<{width}}  {kind}  {column.reason}")
    config = _shown(result.config_path)
    lines += [
        "Wrote:",
        f"  {_shown(result.package_dir)}/: features.py (check it first), preprocessing.py, model.py",
        f"  {config}: the run config (every key of pipeline/configs/local.yaml)",
        f"  {_shown(result.schema_path)}: a starting schema inferred by TFDV (curate it)",
        f"  {_shown(result.data_root)}/: {result.examples['train']} train and {result.examples['eval']} eval examples",
    ]
    if not result.importable:
        lines.append(f"{os.path.dirname(result.package_dir)} is not on the Python path: export "
                     f"PYTHONPATH={os.path.dirname(result.package_dir)} before the commands below.")
    lines += [f"Start the loop on it:  tfxp dev --config {config}",
              f"Or run it once:        tfxp run --config {config}"]
    return "\n".join(lines)
