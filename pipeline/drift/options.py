"""The config's ``drift:`` section: how `tfxp drift` reads its data and which thresholds it applies.
No TensorFlow here: loading a config reads this module."""
from __future__ import annotations

import dataclasses
from typing import Dict


@dataclasses.dataclass
class DriftOptions:
    # Per feature, a threshold that replaces the schema's (its skew_comparator's against the training data,
    # its drift_comparator's between two windows), e.g. {trip_miles: 0.2}. The schema keeps the others.
    thresholds: Dict[str, float] = dataclasses.field(default_factory=dict)
    # At most this many examples of a window are compared (the newest): statistics are computed in memory.
    max_examples: int = 200_000

    def check(self) -> None:
        if self.max_examples < 1:
            raise ValueError(f"drift.max_examples must be at least 1, got {self.max_examples}")
        for name, value in self.thresholds.items():
            if not 0 < value <= 1:
                raise ValueError(f"drift.thresholds.{name} must be in (0, 1] (a distance between distributions), "
                                 f"got {value}")
