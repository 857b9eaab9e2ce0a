"""The TFLite branch's options: the config's ``tflite:`` section, the quantization modes and their
defaults, defined once (no TensorFlow here: loading a config reads them)."""
from __future__ import annotations

import dataclasses
from typing import List

# One .tflite file per mode.
QUANTIZATIONS = {
    "none": "float32, no optimization",
    "dynamic_range": "int8 weights, float activations",
    "float16": "float16 weights",
    "int8": "full integer: int8 weights and activations, calibrated on representative examples",
}
# The quantization-aware-trained model, converted like int8 (tflite.quantization_aware_training).
QAT_VARIANT = "qat_int8"
NEEDS_CALIBRATION = ("int8", QAT_VARIANT)


@dataclasses.dataclass
class TFLiteOptions:
    enabled: bool = True
    quantizations: List[str] = dataclasses.field(default_factory=lambda: ["dynamic_range", "int8"])
    # Also fine-tune a quantization-aware model (tfmot) in the Trainer and convert it to int8.
    quantization_aware_training: bool = False
    qat_steps: int = 200
    # int8 calibration: this many transformed training examples, spread over the split.
    representative_examples: int = 300
    # A variant is blessed when none of the task's metrics is worse than the SavedModel's by more
    # than this: absolute for fractions (accuracy, AUC: 0.01 = 1 point), relative for errors
    # (MAE, RMSE: 0.01 = 1% higher).
    max_metric_drop: float = 0.01

    @property
    def variants(self) -> List[str]:
        return list(self.quantizations) + ([QAT_VARIANT] if self.quantization_aware_training else [])

    def check(self) -> None:
        """Raises ValueError naming the ``tflite.<key>`` that cannot work."""
        unknown = [q for q in self.quantizations if q not in QUANTIZATIONS]
        if unknown:
            raise ValueError(f"tflite.quantizations: unknown mode(s) {', '.join(map(repr, unknown))}; "
                             f"expected any of {', '.join(QUANTIZATIONS)}")
        if self.enabled and not self.variants:
            raise ValueError("tflite: no quantizations and no quantization_aware_training: nothing to "
                             "convert (set tflite.enabled: false to skip the branch)")
        if self.enabled and set(self.variants) & set(NEEDS_CALIBRATION) and self.representative_examples < 1:
            raise ValueError("tflite: int8 needs representative examples to calibrate; tflite.representative_examples "
                             f"must be at least 1, got {self.representative_examples}")
        if self.max_metric_drop < 0:
            raise ValueError(f"tflite.max_metric_drop must be >= 0, got {self.max_metric_drop}")
        if self.quantization_aware_training and self.qat_steps < 1:
            raise ValueError(f"tflite.qat_steps must be at least 1, got {self.qat_steps}")
