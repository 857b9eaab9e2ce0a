"""Quantization-aware fine-tuning (tfmot) of the trained model, for the TFLite branch's qat_int8."""
from __future__ import annotations

import tf_keras as keras


def train_quantization_aware(model, train_ds, steps: int, compile_fn):
    """Fine-tunes a quantization-aware copy of the trained model (fake-quant on Dense layers).

    tfmot's default scheme does not cover Embedding, so only the Dense layers are annotated;
    the int8 conversion calibrates the rest with representative examples. ``compile_fn(model)``
    compiles the copy as the data scientist's model.py compiles the original.
    """
    import tensorflow_model_optimization as tfmot

    quantize = tfmot.quantization.keras

    def annotate(layer):
        if isinstance(layer, keras.layers.Dense):
            return quantize.quantize_annotate_layer(layer)
        return layer

    annotated = keras.models.clone_model(model, clone_function=annotate)
    annotated.set_weights(model.get_weights())
    qat_model = quantize.quantize_apply(annotated)
    compile_fn(qat_model)
    qat_model.fit(train_ds, epochs=1, steps_per_epoch=steps, verbose=2)
    return qat_model
