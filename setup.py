"""tfx-pipeline-project: one TFX pipeline from sharded TFRecords to TF Serving and TFLite."""
from setuptools import find_packages, setup

setup(
    name="tfx-pipeline-project",
    version="0.1.0",
    description="TFX pipeline: TFRecords -> validation -> Transform -> Trainer -> Evaluator -> Pusher (+ TFLite)",
    python_requires=">=3.9,<3.11",
    packages=find_packages(include=["pipeline", "pipeline.*", "components", "components.*",
                                    "serving", "serving.*", "data", "data.*"]),
    package_data={
        "pipeline": ["configs/*.yaml", "schema/*.pbtxt"],
        "data": ["*.csv"],
    },
    install_requires=[
        "tfx[kfp]==1.16.0",
        "tensorflow-serving-api==2.16.1",
        "tensorflow-model-optimization==0.8.1",
        "pyyaml",
        "fastapi",
        "uvicorn",
        "jinja2",
        "matplotlib",
    ],
    extras_require={
        "dev": ["pytest==8.0.0", "pytest-timeout"],
    },
    entry_points={"console_scripts": ["tfxp=pipeline.cli:main"]},
)
