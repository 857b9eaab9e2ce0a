"""The bottom layer: facts every part of the project shares. It imports nothing of the project.

errors.py   TfxpError: the base of every error a user can act on, with the exit code `tfxp` returns
wire.py     tf.train.Example and TF Serving's predict messages, without TensorFlow (the clients)

Named after the command line (the `tfxp` console script is a file in the venv's bin/, not a module).
"""
