"""Which model versions are loaded, and which one answers a request (TF Serving's ServerCore).

* Versions are the numeric directories under each model's ``base_path`` (any tf.io.gfile path);
  ``model_version_policy`` picks the aspired ones: ``latest { num_versions }`` (default 1),
  ``all {}`` or ``specific { versions }``.
* A new version is loaded completely (and warmed up) before it serves; the versions it replaces
  keep serving meanwhile, then are unloaded ("availability preserving", as TF Serving's default).
* Deliberate difference: a version directory without ``saved_model.pb`` is a copy in progress and
  is not loaded (TF Serving would try, and fail, to load it). A version that fails to load is
  retried when its files change.
* Version labels change atomically with the config (one dict swap); a label may only point at an
  available version (TF Serving's rule), so a config that moves a label to a version still loading
  is retried on the next poll.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from serving import errors
from serving.servable import ServerBatching, Servable

log = logging.getLogger(__name__)

START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"


@dataclass
class VersionStatus:
    version: int
    state: str
    error_code: errors.Code = errors.Code.OK
    error_message: str = ""


@dataclass
class _Model:
    config: object  # ModelConfig
    available: Dict[int, Servable] = field(default_factory=dict)  # replaced whole, never mutated
    labels: Dict[str, int] = field(default_factory=dict)  # replaced whole, never mutated
    states: Dict[int, VersionStatus] = field(default_factory=dict)
    failed: Dict[int, Tuple] = field(default_factory=dict)  # version -> files fingerprint at failure


def list_versions(base_path: str) -> Dict[int, str]:
    """Complete version dirs under base_path: numeric names holding saved_model.pb."""
    from serving.predict import model_versions

    return {int(path.rstrip("/").rsplit("/", 1)[-1]): path for path in model_versions(base_path)}


def aspired_versions(policy, available_on_disk: List[int]) -> List[int]:
    """FileSystemStoragePathSource's choice of versions for a ServableVersionPolicy."""
    versions = sorted(available_on_disk)
    choice = policy.WhichOneof("policy_choice") if policy is not None else None
    if choice == "all":
        return versions
    if choice == "specific":
        wanted = set(policy.specific.versions)
        return [v for v in versions if v in wanted]
    count = policy.latest.num_versions if choice == "latest" and policy.latest.num_versions > 0 else 1
    return versions[-count:]


def _fingerprint(path: str) -> Tuple:
    import tensorflow as tf

    entries = []
    for root, _, files in tf.io.gfile.walk(path):
        for name in files:
            full = f"{root}/{name}"
            entries.append((full, tf.io.gfile.stat(full).length))
    return tuple(sorted(entries))


class ModelManager:
    """Loads, serves and unloads the versions of every configured model."""

    def __init__(self, batching: Optional[ServerBatching] = None, enable_warmup: bool = True,
                 warmup: Optional[Callable[[Servable], None]] = None):
        self.batching = batching
        self.enable_warmup = enable_warmup
        self._warmup = warmup
        self._models: Dict[str, _Model] = {}
        self._lock = threading.RLock()  # config changes and polls; requests never take it
        self._stop = threading.Event()
        self._threads: List[threading.Thread] = []
        self.on_change: Optional[Callable[[str, int, str], None]] = None
        self.allow_labels_for_unavailable = False  # --allow_version_labels_for_unavailable_models
        # serving/request_log.ServerRequestLogger (set by the server): each model's logging_config, applied
        # with every config, as ServerCore's MaybeUpdateServerRequestLogger; ``log_request`` hands it calls.
        self.request_logger = None

    # -- configuration ---------------------------------------------------------------------------
    def reload_config(self, config) -> None:
        """Applies a ModelServerConfig as ServerCore::ReloadConfig does: the labels first (each must
        point at a version available now, so a promotion between two loaded versions is one atomic
        switch), then adds, updates and removes models and loads and unloads what they aspire to.
        Raises ServingError, changing nothing, when a label points at a version that is not
        available (as in TF Serving, add a version to the policy first and label it once it serves:
        `tfxp release` does), or when a logging_config cannot be applied (TF Serving applies the
        models first, then fails). Each model's logging_config is applied last, as TF Serving does."""
        with self._lock:
            configs = list(config.model_config_list.config)
            names = [c.name for c in configs]
            for name in set(names):
                if names.count(name) > 1:
                    raise errors.invalid_argument(f"Illegal to list model {name} multiple times in config list")
            if self.request_logger is not None:
                self.request_logger.check(config)
            new_labels = {}
            for model_config in configs:
                model = self._models.get(model_config.name)
                available = model.available if model is not None else {}
                old_labels = model.labels if model is not None else {}
                labels = dict(model_config.version_labels)
                for label, version in labels.items():
                    # --allow_version_labels_for_unavailable_models: a new label (not a moved one) may wait.
                    unused = self.allow_labels_for_unavailable and old_labels.get(label, version) == version
                    if version not in available and not unused:
                        raise errors.failed_precondition(
                            f"Request to assign label to version {version} of model {model_config.name}, "
                            f"which is not currently available for inference")
                new_labels[model_config.name] = labels
            for model_config in configs:
                model = self._models.get(model_config.name)
                if model is None:
                    self._models[model_config.name] = _Model(config=model_config)
                else:
                    model.config = model_config
            for name, labels in new_labels.items():
                if labels != self._models[name].labels:
                    log.info("model %s: version labels %s", name, labels or "{}")
                self._models[name].labels = labels
            for name in [n for n in self._models if n not in names]:
                self._unload_all(name)
            self.poll()
            if self.request_logger is not None:
                self.request_logger.update(config)

    def log_request(self, model_name: str, kind: str, build: Callable, *args) -> None:
        """After a successful Predict/Classify/Regress: the request logger samples it (ServerCore::Log);
        ``build(*args)`` returns its request and response protos, on the logger's thread. Never raises."""
        if self.request_logger is not None:
            self.request_logger.log(model_name, kind, build, *args)

    def model_names(self) -> List[str]:
        return sorted(self._models)

    # -- polling ---------------------------------------------------------------------------------
    def poll(self) -> None:
        """One look at every model's base path: load the new aspired versions, then unload the rest."""
        with self._lock:
            for name, model in list(self._models.items()):
                try:
                    on_disk = list_versions(model.config.base_path)
                except Exception as e:  # a storage hiccup: keep serving what is loaded
                    log.warning("model %s: cannot list %s: %s", name, model.config.base_path, e)
                    continue
                if not on_disk and not model.available:
                    log.debug("model %s: no versions found under %s", name, model.config.base_path)
                aspired = aspired_versions(model.config.model_version_policy, list(on_disk))
                for version in aspired:
                    if version not in model.available:
                        self._load(model, version, on_disk[version])
                # Availability preserving (TF Serving's default policy): the versions being replaced
                # go only once an aspired one serves, so a version that fails to load changes nothing.
                if not aspired or any(v in model.available for v in aspired):
                    for version in [v for v in model.available if v not in aspired]:
                        self._unload(model, version)

    def _load(self, model: _Model, version: int, path: str) -> None:
        name = model.config.name
        if version in model.failed:
            if model.failed[version] == _fingerprint(path):
                return  # failed before on these very files
            del model.failed[version]
        self._set_state(model, version, LOADING)
        log.info("model %s: loading version %d from %s", name, version, path)
        try:
            servable = Servable(name, version, path, self.batching)
            if self.enable_warmup and self._warmup is not None:
                self._warmup(servable)
        except Exception as e:  # noqa: BLE001 - any load failure is reported in the version's status
            code = e.code if isinstance(e, errors.ServingError) else errors.Code.UNKNOWN
            message = getattr(e, "message", None) or str(e)
            log.error("model %s: version %d failed to load: %s", name, version, message.splitlines()[0])
            model.failed[version] = _fingerprint(path)
            self._set_state(model, version, END, code, message)
            return
        model.available = {**model.available, version: servable}
        self._set_state(model, version, AVAILABLE)
        log.info("model %s: version %d is serving", name, version)

    def _unload(self, model: _Model, version: int) -> None:
        self._set_state(model, version, UNLOADING)
        servable = model.available[version]
        model.available = {v: s for v, s in model.available.items() if v != version}
        servable.close()
        # In-flight requests hold their own reference: TensorFlow frees the model after they finish.
        self._set_state(model, version, END)
        log.info("model %s: version %d unloaded", model.config.name, version)

    def _unload_all(self, name: str) -> None:
        model = self._models.pop(name)
        for version in list(model.available):
            self._unload(model, version)

    def _set_state(self, model: _Model, version: int, state: str, code=errors.Code.OK, message: str = "") -> None:
        model.states[version] = VersionStatus(version, state, code, message)
        if self.on_change:
            self.on_change(model.config.name, version, state)

    def start_polling(self, file_system_poll_seconds: float, config_source: Optional[Callable] = None,
                      config_poll_seconds: float = 0) -> None:
        """Background threads: the file system every N s (0: never) and, with ``config_source``
        (a function returning a ModelServerConfig), the config file every M s (0: never)."""
        def loop(seconds: float, action: Callable[[], None], what: str) -> None:
            while not self._stop.wait(seconds):
                try:
                    action()
                except errors.ServingError as e:
                    log.warning("%s: %s (will retry)", what, e.message)
                except Exception as e:  # noqa: BLE001 - a poll must never kill the server
                    log.error("%s failed: %s", what, e)

        if file_system_poll_seconds > 0:
            self._threads.append(threading.Thread(target=loop, args=(file_system_poll_seconds, self.poll,
                                                                       "file system poll"), daemon=True))
        if config_source is not None and config_poll_seconds > 0:
            self._threads.append(threading.Thread(
                target=loop, args=(config_poll_seconds, lambda: self.reload_config(config_source()),
                                   "model config reload"), daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()

    # -- requests --------------------------------------------------------------------------------
    def servable(self, name: str, version: Optional[int] = None, label: Optional[str] = None) -> Servable:
        """The servable a ModelSpec asks for (ServerCore::ServableRequestFromModelSpec)."""
        if not name:
            raise errors.invalid_argument("ModelSpec has no name specified.")
        model = self._models.get(name)
        if label:
            labels = model.labels if model is not None else {}
            if label not in labels:
                raise errors.invalid_argument(f"Unrecognized servable version label: {label}")
            version = labels[label]
        available = model.available if model is not None else {}
        if version is None:
            if not available:
                raise errors.not_found(f"Servable not found for request: Latest({name})")
            return available[max(available)]
        if version not in available:
            raise errors.not_found(f"Servable not found for request: Specific({name}, {version})")
        return available[version]

    def version_statuses(self, name: str, version: Optional[int] = None) -> List[VersionStatus]:
        """GetModelStatus: every version the server knows of (newest first), or the one asked for."""
        model = self._models.get(name)
        states = dict(model.states) if model is not None else {}
        if version is not None:
            if version not in states:
                raise errors.not_found(f"Could not find version {version} of model {name}")
            return [states[version]]
        if not states:
            raise errors.not_found(f"Could not find any versions of model {name}")
        return [states[v] for v in sorted(states, reverse=True)]

    def available_versions(self, name: str) -> List[int]:
        model = self._models.get(name)
        return sorted(model.available) if model is not None else []
