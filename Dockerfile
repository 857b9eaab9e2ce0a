# The pipeline image for Kubeflow Pipelines. Every compiled step runs
#   python -m tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor --executor_class_path ... 
# in it, and imports the project's code by module path (components.training.trainer.run_fn, ...).
#
#   docker build -t gcr.io/YOUR_PROJECT/tfx-pipeline-project:latest .
#   docker push gcr.io/YOUR_PROJECT/tfx-pipeline-project:latest
#
# Python 3.10 because TFX 1.16 needs >=3.9,<3.11; the environment is the one frozen in
# constraints.txt, the same as `make` installs locally.
FROM python:3.10-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_USE_LEGACY_KERAS=1

WORKDIR /pipeline

# Dependencies first, in their own layer: editing pipeline code does not reinstall TensorFlow.
COPY constraints.txt ./
RUN pip install -r constraints.txt

# The project itself (its dependencies are all in the layer above): every package of the repository
# (.dockerignore leaves out tests, benchmarks, runs and the sample CSV), so a data scientist's package
# beside components/ (user_package) is in the image too.
COPY . ./
RUN pip install --no-deps . && python -c "import components.training.trainer, components.preprocessing, pipeline.pipeline"

# The image's default command is the TFX v2 entrypoint's; KFP passes its own command and args, and so does
# the request-log sink's Deployment (tfxp log-sink, serving/k8s/log-sink/).
CMD ["python", "-m", "tfx.orchestration.kubeflow.v2.container.kubeflow_v2_run_executor", "--help"]
