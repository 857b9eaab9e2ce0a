"""The drift check's verdict beside its page: what the run report shows of the latest check.

    <output_root>/drift/<pipeline>/<UTC time>.html    the page of one check
    <output_root>/drift/<pipeline>/latest.json         the newest check's verdict, with its page's path
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional

from tfxp.files import write_atomically

LATEST = "latest.json"


def drift_dir(cfg) -> str:
    return os.path.join(cfg.resolved_output_root, "drift", cfg.pipeline_name)


def write_latest(cfg, verdict: Dict[str, Any]) -> str:
    path = os.path.join(drift_dir(cfg), LATEST)
    write_atomically(path, json.dumps(verdict, indent=1, sort_keys=True) + "\n")
    return path


def read_latest(cfg) -> Optional[Dict[str, Any]]:
    """The newest check's verdict (keys: checked_at, page, crossed, compared, examples, reference), or None."""
    path = os.path.join(drift_dir(cfg), LATEST)
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
