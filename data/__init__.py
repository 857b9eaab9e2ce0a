"""Sample data and the CSV -> sharded tf.train.Example TFRecord tool."""
import os

DATA_DIR = os.path.dirname(os.path.abspath(__file__))
SAMPLE_CSV = os.path.join(DATA_DIR, "chicago_taxi.csv")
