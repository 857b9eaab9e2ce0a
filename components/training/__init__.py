"""Platform: everything the Trainer runs (run_fn: components.training.trainer.run_fn).

component.py the Trainer component: TFX's, with train_steps and eval_steps as ints (Kubeflow run parameters)
options.py   the training: section of the config, strategy names, the Trainer custom_config (no TensorFlow)
trainer.py   run_fn: builds your model for your task, trains it under the strategy, exports it
inputs.py    the input pipeline (training, diagnose-input, TFLite), the model inputs
export.py    the one SavedModel: serving_default on raw tf.Examples, transform_features, serving_transformed (TFLite)
strategy.py  builds the tf.distribute strategy by name
launcher.py  starts and watches local worker processes (multi-worker, parameter server, logical CPUs)
worker.py    one worker process: builds the strategy in a fresh runtime, runs the trainer
engines.py   kubeflow.training: where the Trainer trains on Kubeflow (its pod, Vertex AI, a TFJob), no TensorFlow
tfjob.py     the TFJob manifest and the RBAC its step needs (pure functions)
tfjob_executor.py  the TFJob engine's Trainer: creates the TFJob, waits for it, fails naming it
Imports run one way: worker -> trainer -> launcher, inputs, export, strategy -> options;
engines -> tfjob <- tfjob_executor (engines imports tfjob_executor's Trainer only when chosen).
qat.py       quantization-aware fine-tuning (tfmot)
"""
