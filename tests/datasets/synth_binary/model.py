"""The sample's model, unchanged: its head and loss follow TASK."""
from components.model import USE_AUTOGRAPH, build_model  # noqa: F401
