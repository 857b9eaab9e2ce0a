"""Serving: pushed model discovery, prediction, (later) TF Serving configs and clients."""
