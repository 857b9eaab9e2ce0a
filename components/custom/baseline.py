"""Baseline resolution for the Evaluator: the latest blessed model that is NOT the candidate.

TFX's LatestBlessedModelStrategy, on a rerun where the Trainer is cached, returns
the candidate itself as its own baseline: the Evaluator's inputs change, it
re-evaluates the model against itself, and Pusher pushes the same model again
under a new version. Excluding the candidate keeps a no-change rerun fully
cached, and after a real change the baseline is the previously blessed model.
"""
from __future__ import annotations

from typing import Dict, List, Optional

from tfx import types
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy

CANDIDATE_KEY = "candidate"


class LatestBlessedNonCandidateModelStrategy(LatestBlessedModelStrategy):
    """Inputs: model, model_blessing (all of them) and candidate (the Trainer's model this run)."""

    def resolve_artifacts(self, store, input_dict: Dict[str, List[types.Artifact]]
                          ) -> Optional[Dict[str, List[types.Artifact]]]:
        inputs = dict(input_dict)
        candidates = inputs.pop(CANDIDATE_KEY, [])
        excluded = {a.id for a in candidates}
        inputs = {key: [a for a in artifacts if a.id not in excluded] for key, artifacts in inputs.items()}
        result = super().resolve_artifacts(store, inputs)
        result[CANDIDATE_KEY] = candidates
        return result
