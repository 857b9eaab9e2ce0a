"""tfx-pipeline-project: one TFX pipeline from sharded TFRecords to TF Serving and TFLite."""
from setuptools import find_packages, setup

setup(
    name="tfx-pipeline-project",
    version="0.1.0",
    description="TFX pipeline: TFRecords -> validation -> Transform -> Trainer -> Evaluator -> Pusher (+ TFLite)",
    python_requires=">=3.9,<3.11",
    # Every package of the repository but the tests and benchmarks: the platform, and any data
    # scientist's package beside components/ (user_package), so that the Kubeflow image has it too.
    packages=find_packages(exclude=["tests", "tests.*", "bench", "bench.*"]),
    package_data={
        "": ["*.yaml", "*.pbtxt"],  # configs and schemas, wherever they live
        "data": ["*.csv"],
        "serving": ["templates/*.j2"],  # the nginx template (serving/load_balancer.py)
        "pipeline": ["templates/*.j2"],  # the run report's page (pipeline/report/render.py)
    },
    install_requires=[
        "tfx[kfp]==1.16.0",
        "tensorflow-serving-api==2.16.1",
        "tensorflow-model-optimization==0.8.1",
        "pyyaml",
        "fastapi",
        "uvicorn",
        "httptools",  # uvicorn's fast HTTP parser and event loop: tfxp serve's REST latency
        "uvloop",
        "prometheus_client",
        "requests",
        "grpcio",
        "jinja2",
        "matplotlib",
        "psutil",  # tfxp dev: ends its child processes on a second Ctrl-C
        "google-crc32c",  # the request logs' TFRecord checksums, without TensorFlow (serving/log_writer.py)
        # From 4.24 jsonschema imports rfc3987-syntax, which builds a Lark grammar at import (4.8 s here), whenever
        # the kubernetes client, which every TFX process imports (the InfraValidator's KubernetesRunner), finds
        # kubernetes-validate installed: 4.8 s more before every run, every test process and every Kubeflow step.
        "jsonschema<4.24",
    ],
    extras_require={
        "dev": ["pytest==8.0.0", "pytest-timeout", "pytest-xdist==3.6.1", "gcp-storage-emulator==2026.7.19",
                # tests/serving/test_k8s.py: Kubernetes' API schemas (shipped: offline); jsonschema also checks
                # serving/docker-compose.yml against the compose-spec schema (KServe's and compose-spec's
                # schemas come from PyPI and npm at test time: tests/support/registry_schemas.py)
                "kubernetes-validate==1.37.0", "jsonschema",
                # the notebook (notebooks/dev_loop.ipynb) executed in a real Jupyter kernel
                "nbclient", "nbformat", "ipykernel"],
    },
    entry_points={"console_scripts": ["tfxp=pipeline.cli:main"]},
)
