"""The config's kubeflow: section: each step's resources, checked when the config loads."""
import os

import pytest

from pipeline.config import CONFIG_DIR, ConfigError, load_config

KUBEFLOW = os.path.join(CONFIG_DIR, "kubeflow.yaml")


def test_the_preset_sizes_the_trainer_transform_and_evaluator_apart_from_every_other_step():
    resources = load_config(KUBEFLOW).kubeflow.resources
    sizes = {name: (getattr(resources, name).cpu_limit, getattr(resources, name).memory_limit)
             for name in ("default", "transform", "trainer", "evaluator")}
    assert sizes == {"default": ("1", "3Gi"), "transform": ("2", "6Gi"), "trainer": ("4", "6Gi"),
                     "evaluator": ("2", "6Gi")}
    assert resources.trainer.accelerator is None


def test_overriding_one_key_of_a_step_keeps_that_step_s_other_defaults():
    trainer = load_config(overrides=["kubeflow.resources.trainer.cpu_limit=8"]).kubeflow.resources.trainer
    assert (trainer.cpu_limit, trainer.memory_limit) == ("8", "6Gi")


def test_kubernetes_quantities_become_cores_and_the_ir_s_gigabytes():
    step = load_config(overrides=["kubeflow.resources.default.cpu_limit=1500m",
                                  "kubeflow.resources.default.memory_limit=512Mi",
                                  "kubeflow.resources.default.cpu_request=0.5",
                                  "kubeflow.resources.default.memory_request=256M"]).kubeflow.resources.default
    assert step.ir_fields() == {"cpu_limit": 1.5, "memory_limit": 512 * 2 ** 20 / 1e9,
                                "cpu_request": 0.5, "memory_request": 0.256}


@pytest.mark.parametrize("overrides, message", [
    (["kubeflow.resources.trainer.cpu_limit=-2"], "kubeflow.resources.trainer.cpu_limit: expected CPU cores"),
    (["kubeflow.resources.default.cpu_limit=0"], "kubeflow.resources.default.cpu_limit must be above 0 cores"),
    (["kubeflow.resources.transform.memory_limit=8GB"],
     "kubeflow.resources.transform.memory_limit: expected memory with a unit .* got '8GB'"),
    (["kubeflow.resources.evaluator.memory_limit=8"], "kubeflow.resources.evaluator.memory_limit: expected memory "
                                                      "with a unit"),
    (["kubeflow.resources.trainer.memory_request=16Gi"],
     r"kubeflow.resources.trainer.memory_request \(16Gi\) is above kubeflow.resources.trainer.memory_limit \(6Gi\)"),
    (["kubeflow.resources.trainer.accelerator_count=1"],
     "kubeflow.resources.trainer.accelerator_count: 1 accelerators of no type"),
    (["kubeflow.resources.trainer.accelerator=nvidia.com/gpu", "kubeflow.resources.trainer.accelerator_count=0"],
     "kubeflow.resources.trainer.accelerator_count must be at least 1"),
    (["kubeflow.resources.trainer.accelerator=a T4 please"], "kubeflow.resources.trainer.accelerator: expected a "
                                                             "Kubernetes resource name"),
    (["kubeflow.resources.trainer.gpus=1"], "unknown key 'gpus'"),
])
def test_bad_resources_fail_with_one_line_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message) as error:
        load_config(KUBEFLOW, overrides)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("strategy, extra, message", [
    ("multi_worker_mirrored", [], "needs a training.strategy that trains on the pod's GPUs .*"
                                  "training.strategy is multi_worker_mirrored"),
    ("parameter_server", [], "training.strategy is parameter_server"),
    ("mirrored", ["training.cpu_devices=4"], "with training.cpu_devices 4: splitting the CPU"),
    ("one_device", ["kubeflow.resources.trainer.accelerator_count=2"], "one_device trains on one of them"),
])
def test_a_gpu_trainer_refuses_a_strategy_that_leaves_the_gpus_idle(strategy, extra, message):
    with pytest.raises(ConfigError, match="kubeflow.resources.trainer.accelerator: nvidia.com/gpu x .*" + message):
        load_config(KUBEFLOW, ["kubeflow.resources.trainer.accelerator=nvidia.com/gpu",
                               f"training.strategy={strategy}"] + extra)


@pytest.mark.parametrize("accelerator, strategy", [
    ("nvidia.com/gpu", "auto"), ("nvidia.com/gpu", "mirrored"), ("NVIDIA_TESLA_T4", "one_device"),
    ("TPU_V3", "tpu")])
def test_strategies_that_use_the_accelerators_load(accelerator, strategy):
    cfg = load_config(KUBEFLOW, [f"kubeflow.resources.trainer.accelerator={accelerator}",
                                 f"training.strategy={strategy}"])
    assert cfg.kubeflow.resources.trainer.ir_fields()["accelerator"] == {"type": accelerator, "count": 1}


def test_a_tpu_needs_the_tpu_strategy():
    with pytest.raises(ConfigError, match="TPU_V3 x 1 needs training.strategy tpu, not mirrored"):
        load_config(KUBEFLOW, ["kubeflow.resources.trainer.accelerator=TPU_V3"])
