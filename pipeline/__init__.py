"""Pipeline definition, configuration and runners."""
import components  # noqa: F401  (sets the one Keras before TensorFlow is imported)
