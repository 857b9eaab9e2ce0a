"""A TF Serving-compatible model server and its deployment files: a product of its own.

It imports only the bottom layer (tfxp/) and is told what to serve through a ServingTarget
(serving/options.py); it never reads the pipeline's config.

server.py, manager.py, servable.py, batching.py   `tfxp serve`: tensorflow_model_server's flags and behaviour
rest.py, grpc_service.py, json_tensor.py, inference.py   TF Serving's REST and gRPC APIs
protos.py, metrics.py, errors.py                 its config files, Prometheus metrics, error statuses
client.py                                        a REST/gRPC client of the predict API
predict.py, inspect.py                           pushed versions on disk; what a SavedModel/TFLite model holds
log_sink.py, payload_events.py, log_shipper.py  `tfxp log-sink`: KServe's payload-logger events -> request logs
release.py, k8s.py, load_balancer.py             models.config releases, Kubernetes/KServe, nginx + compose
k8s_names.py, k8s_log_sink.py                    the manifests' names and labels; the log sink's manifests
options.py                                       the serving: section, ServingTarget, names and ports
"""
