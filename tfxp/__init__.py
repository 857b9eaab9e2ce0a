"""The bottom layer: facts every part of the project shares. It imports nothing of the project.

errors.py       TfxpError: the base of every error a user can act on, with the exit code `tfxp` returns
wire.py         tf.train.Example and TF Serving's predict messages, without TensorFlow (the clients)
nodes.py        the pipeline's node ids (what pipeline.py names each component; what MLMD readers look up)
contract.py     the serving contract: signature and tensor names, default ports, TFLite artifact files
files.py        the one atomic writer, and which paths are remote
saved_model.py  a model version dir: its file names, its saved_model.pb, its warmup records
request_logs.py request logs: PredictionLog TFRecord files, their names, and the examples in them

Named after the command line (the `tfxp` console script is a file in the venv's bin/, not a module).
"""
