"""The model's hyperparameters: what the data scientist's ``build_model`` declares, and the values a model
is built with. The one place that calls ``build_model`` (the Trainer, the Tuner's trials, the benchmarks).

model.py declares its search space with KerasTuner's HyperParameters, next to the code that uses it:

    def build_model(inputs, task, hp):
        learning_rate = hp.Float("learning_rate", 1e-4, 1e-2, sampling="log", default=1e-3)

Which value each hyperparameter takes, first that applies:

1. ``training.learning_rate`` when set (not null): the ``learning_rate`` hyperparameter is fixed to it, in the
   Trainer and in the Tuner's search (a model that declares no ``learning_rate`` is an error then);
2. the values handed to the Trainer (TFX's ``hyperparameters`` input: the Tuner's best, or the latest best
   with ``tuning.reuse_best``); a name given that build_model does not declare is an error;
3. the default model.py declares.

A build_model written before tuning existed, ``build_model(inputs, task, learning_rate)``, still works: it gets
``training.learning_rate`` (0.001 when null) and has no search space to tune.
"""
from __future__ import annotations

import inspect
import os
import re
import traceback
from typing import Any, Dict, Mapping, Optional, Sequence

from components.core.user_code import UserCode, UserCodeError

LEARNING_RATE = "learning_rate"
# What a build_model(inputs, task, learning_rate) gets when training.learning_rate is null.
LEGACY_LEARNING_RATE = 0.001
# KerasTuner's Hyperband records its schedule among a trial's values ("tuner/epochs", ...): not the model's.
TUNER_PREFIX = "tuner/"


def model_values(values: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """The model's hyperparameters among ``values`` (KerasTuner's own bookkeeping left out)."""
    return {k: v for k, v in (values or {}).items() if not k.startswith(TUNER_PREFIX)}


def describe(values: Mapping[str, Any]) -> str:
    """``learning_rate=0.00123, width=2.0``: values as a line says them."""
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in model_values(values).items()) or "no hyperparameters"


def signature_kind(user: UserCode) -> str:
    """How model.py's build_model takes its hyperparameters: ``hp`` (KerasTuner's HyperParameters),
    ``learning_rate`` (the form before tuning existed) or ``none`` (two arguments)."""
    parameters = list(inspect.signature(user.model_module().build_model).parameters)
    if len(parameters) < 3:
        return "none"
    return "learning_rate" if parameters[2] == LEARNING_RATE else "hp"


def new_hyperparameters(values: Optional[Mapping[str, Any]] = None, learning_rate: Optional[float] = None):
    """HyperParameters holding ``values`` before build_model declares anything: a declaration then takes the
    value given (KerasTuner keeps a value already there) and the others their defaults."""
    import keras_tuner

    hp = keras_tuner.HyperParameters()
    hp.values.update(model_values(values))
    if learning_rate is not None:
        hp.values[LEARNING_RATE] = float(learning_rate)
    return hp


def declared(hp) -> set:
    """The names build_model declared in ``hp`` (conditional ones included, active or not)."""
    return {p.name for p in hp.space}


def where_in(user: UserCode, error: BaseException) -> str:
    """``/path/model.py, line 33`` (the innermost line of model.py in the error's traceback), or model.py's path."""
    model_file = os.path.realpath(user.file("model"))
    lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__)
             if os.path.realpath(frame.filename) == model_file]
    return f"{user.file('model')}, line {lines[-1]}" if lines else user.file("model")


def call_build_model(user: UserCode, model_inputs: Sequence, hp, *, learning_rate: Optional[float] = None,
                     what: str = ""):
    """The user's compiled tf_keras model, built with ``hp`` (whatever its build_model's form). Its own errors
    become one line naming model.py's line and the values it was built with (``what`` says whose they are)."""
    import tf_keras as keras

    kind = signature_kind(user)
    try:
        if kind == "hp":
            model = user.model_module().build_model(model_inputs, user.task, hp)
        elif kind == "learning_rate":
            model = user.model_module().build_model(model_inputs, user.task,
                                                    LEGACY_LEARNING_RATE if learning_rate is None else learning_rate)
        else:
            model = user.model_module().build_model(model_inputs, user.task)
    except UserCodeError:
        raise
    except Exception as e:
        values = describe(hp.values) if kind == "hp" else f"learning_rate={learning_rate}"
        raise UserCodeError(f"{where_in(user, e)}: build_model fails with {values}{what}: {error_line(e)}") from e
    if not isinstance(model, keras.Model):
        raise UserCodeError(f"{user.file('model')}: build_model must return a tf_keras Model (import tf_keras as "
                            f"keras), got {type(model).__module__}.{type(model).__name__}")
    if model.optimizer is None:
        raise UserCodeError(f"{user.file('model')}: build_model must compile the model (model.compile(...))")
    return model


def build_for_training(user: UserCode, model_inputs: Sequence, values: Optional[Mapping[str, Any]] = None,
                       learning_rate: Optional[float] = None):
    """(model, the values it was built with): the Trainer's model, with the hyperparameter values handed to it
    (``values``, e.g. the Tuner's best) and ``training.learning_rate`` (see the module docstring)."""
    kind = signature_kind(user)
    given = model_values(values)
    if kind != "hp":
        if given:
            raise UserCodeError(f"{user.file('model')}: the Trainer was given hyperparameters ({describe(given)}) "
                                f"but build_model takes no hp argument: declare them with "
                                f"build_model(inputs, task, hp) (docs/tuning.md)")
        model = call_build_model(user, model_inputs, None, learning_rate=learning_rate)
        if kind == "none":
            return model, {}
        return model, {LEARNING_RATE: LEGACY_LEARNING_RATE if learning_rate is None else learning_rate}
    hp = new_hyperparameters(given, learning_rate)
    model = call_build_model(user, model_inputs, hp, learning_rate=learning_rate,
                             what=" (the hyperparameters given to the Trainer)" if given else "")
    check_declared(user, hp, given, learning_rate)
    return model, {name: hp.values[name] for name in sorted(declared(hp)) if name in hp.values}


def check_declared(user: UserCode, hp, given: Mapping[str, Any], learning_rate: Optional[float]) -> None:
    """Every name the platform sets must be one build_model declares: a misspelt or renamed hyperparameter
    would otherwise be silently ignored."""
    names = declared(hp)
    if learning_rate is not None and LEARNING_RATE not in names:
        raise UserCodeError(f"{user.file('model')}: training.learning_rate is set ({learning_rate}) but build_model "
                            f"declares no {LEARNING_RATE!r} hyperparameter ({_declares(names)}); declare "
                            f"hp.Float({LEARNING_RATE!r}, ...) or set training.learning_rate to null")
    unknown = sorted(set(model_values(given)) - names)
    if unknown:
        raise UserCodeError(f"{user.file('model')}: the hyperparameters given to the Trainer name "
                            f"{', '.join(map(repr, unknown))}, which build_model does not declare "
                            f"({_declares(names)}); they come from an older search space: rerun the Tuner "
                            f"(tuning.enabled=true) or train with the defaults (tuning.reuse_best=false)")


def _declares(names) -> str:
    return f"it declares {', '.join(sorted(names))}" if names else "it declares none"


# Keras's wording of an error raised in a layer's call: "<Type>: Exception encountered when calling layer 'x' ...",
# the error's own message on the next lines, then "Call arguments received ...".
_IN_LAYER = re.compile(r"^([\w.]+): Exception encountered when calling layer '([^']+)'")
_ERROR_HEADER = re.compile(r"^[\w.]*(Error|Exception)\b[^:]*: ")


def error_line(error: BaseException, limit: int = 240) -> str:
    """``ValueError: what went wrong``: the error in one line. TensorFlow's errors from a traced function hold a
    traceback in their message ("in user code: ... ValueError: ..."): their last error header is the cause."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    headers = [i for i, line in enumerate(lines) if _ERROR_HEADER.match(line)]
    if not headers:
        text = f"{type(error).__name__}: {' '.join(lines)}"
    else:
        text = lines[headers[-1]]
        in_layer = _IN_LAYER.match(text)
        if in_layer:
            detail = []
            for line in lines[headers[-1] + 1:]:
                if line.startswith("Call arguments received"):
                    break
                detail.append(line)
            text = f"{in_layer.group(1)}: {' '.join(detail)} (in layer {in_layer.group(2)!r})"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + "..."
