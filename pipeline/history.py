"""What each run of a pipeline was, remembered in MLMD: `tfxp runs`.

Every `tfxp run` and every `tfxp dev` iteration ends by writing one record on its MLMD
``pipeline_run`` context (a JSON custom property): a digest of each file the data scientist edits
(their package's files and what those import of the project, the schema), the config's values, the
gate metric of the candidate on the overall slice, whether the Evaluator and the InfraValidator
blessed it and which version the Pusher wrote. `tfxp runs` reads them back (MLMD only, no TensorFlow)
and says what changed between one run and the one before, so that a day later the user can tell which
edit was best:

    run                         by    changed since the one before        accuracy  blessed  pushed
    2026-12-02T20:31:07.118412  dev   model.py                            0.8951    yes      1796243101
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any, Dict, List, Optional, Tuple

RECORD_KEY = "tfxp_record"
RECORD_VERSION = 1


def _flatten(value: Any, prefix: str = "") -> Dict[str, Any]:
    if isinstance(value, dict):
        flat = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: value}


def config_values(cfg) -> Dict[str, Any]:
    """The config as dotted keys (``training.train_steps``) and JSON values."""
    return {key: value for key, value in _flatten(dataclasses.asdict(cfg)).items()}


def edited_files(cfg) -> Dict[str, str]:
    """{name: sha256 prefix} of every file the data scientist edits for this pipeline: their package's files and
    the project files those import (what Transform's and the Trainer's fingerprints cover of it), and the schema.
    Names are relative to the package's parent folder (``components/model.py``)."""
    from pipeline.code_fingerprint import user_package_reach

    user_dir = os.path.dirname(os.path.abspath(cfg.user_code.directory))
    files = {os.path.relpath(path, user_dir): path for path in user_package_reach(cfg.user_package)}
    if cfg.resolved_schema_path:
        files[os.path.basename(cfg.resolved_schema_path)] = cfg.resolved_schema_path
    digests = {}
    for name, path in sorted(files.items()):
        try:
            with open(path, "rb") as f:
                digests[name] = hashlib.sha256(f.read()).hexdigest()[:16]
        except FileNotFoundError:
            digests[name] = "missing"
    return digests


@dataclasses.dataclass
class Record:
    """One run as `tfxp runs` lists it."""
    run_id: str
    by: str                              # "run" or "dev"
    files: Dict[str, str]                # edited_files()
    config: Dict[str, Any]               # config_values()
    gate_metric: str                     # the gate's metric name (accuracy, mae, ...)
    gate_value: Optional[float]          # the candidate's, overall slice; None: no evaluation in this run
    blessed: Optional[bool]              # the Evaluator's verdict; None: none in this run
    infra_blessed: Optional[bool]        # the InfraValidator's
    pushed: Optional[str]                # the version dir name the Pusher wrote in this run, or None
    outcome: str                         # "pushed", "not pushed: <why>", "failed: <why>", "stopped"
    seconds: float

    def to_json(self) -> str:
        return json.dumps(dict(dataclasses.asdict(self), version=RECORD_VERSION), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Optional["Record"]:
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if data.pop("version", None) != RECORD_VERSION:
            return None
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})


def save_record(metadata_path: str, pipeline_name: str, record: Record) -> None:
    """Writes ``record`` on the MLMD context of run ``record.run_id`` of ``pipeline_name``."""
    from pipeline.run_summary import open_store

    store = open_store(metadata_path, writable=True)
    context = store.get_context_by_type_and_name("pipeline_run", record.run_id)
    if context is None:
        raise FileNotFoundError(f"no run {record.run_id!r} of pipeline {pipeline_name!r} in {metadata_path}")
    context.custom_properties[RECORD_KEY].string_value = record.to_json()
    store.put_contexts([context])


def read_records(metadata_path: str, pipeline_name: str) -> List[Tuple[str, Optional[Record]]]:
    """(run id, its record or None when the run wrote none) for every run of ``pipeline_name``, oldest first."""
    from pipeline.run_summary import open_store, pipeline_runs

    if not os.path.exists(metadata_path):
        return []
    runs = pipeline_runs(open_store(metadata_path), pipeline_name)
    found = []
    for run in runs:
        prop = run.custom_properties.get(RECORD_KEY)
        found.append((run.name, Record.from_json(prop.string_value) if prop is not None else None))
    return found


def changes(before: Optional[Record], after: Record) -> List[str]:
    """What the user changed from ``before`` to ``after``: file names, then ``key old -> new`` per config key."""
    if before is None:
        return ["(first run)"]
    names = sorted(set(before.files) | set(after.files))
    found = [os.path.basename(n) if n.count("/") <= 1 else n for n in names
             if before.files.get(n) != after.files.get(n)]
    for key in sorted(set(before.config) | set(after.config)):
        old, new = before.config.get(key), after.config.get(key)
        if old != new:
            found.append(f"{key} {json.dumps(old)} -> {json.dumps(new)}")
    return found or ["nothing"]


def _yes_no(value: Optional[bool]) -> str:
    return "-" if value is None else "yes" if value else "no"


def format_history(records: List[Tuple[str, Optional[Record]]], limit: int = 10) -> str:
    """The newest ``limit`` runs, oldest first, one line each."""
    shown = records[-limit:] if limit > 0 else records
    start = len(records) - len(shown)
    metric = next((r.gate_metric for _, r in reversed(records) if r is not None), "gate")
    rows = [("run", "by", "changed since the one before", metric, "blessed", "pushed", "seconds")]
    for i, (run_id, record) in enumerate(shown, start=start):
        if record is None:
            rows.append((run_id, "-", "(not recorded: a run from before tfxp runs existed)", "-", "-", "-", "-"))
            continue
        previous = next((r for _, r in reversed(records[:i]) if r is not None), None)
        value = "-" if record.gate_value is None else f"{record.gate_value:.4f}"
        pushed = record.pushed or ("-" if record.outcome == "pushed" else record.outcome.split(":")[0])
        rows.append((run_id, record.by, ", ".join(changes(previous, record)), value, _yes_no(record.blessed),
                     pushed, f"{record.seconds:.1f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def record_for(cfg, by: str, seconds: float, outcome=None, failure: str = "") -> Record:
    """The record of a run of ``cfg`` that ended with ``outcome`` (pipeline/run_outcome.py), or ``failure``."""
    if outcome is None:
        return Record(run_id="", by=by, files=edited_files(cfg), config=config_values(cfg),
                      gate_metric=cfg.gate_metric.name, gate_value=None, blessed=None, infra_blessed=None,
                      pushed=None, outcome=f"failed: {failure}" if failure else "stopped", seconds=seconds)
    if outcome.pushed:
        result = "pushed"
    elif failure:
        result = f"failed: {failure}"
    elif outcome.push_cached:
        result = "cached: nothing new to push"
    else:
        result = f"not pushed: {outcome.why_not_pushed or 'the Pusher did not push'}"
    return Record(run_id=outcome.run_id, by=by, files=edited_files(cfg), config=config_values(cfg),
                  gate_metric=outcome.gate_metric, gate_value=outcome.gate_value, blessed=outcome.blessed,
                  infra_blessed=outcome.infra_blessed, pushed=outcome.pushed, outcome=result, seconds=seconds)


def remember(cfg, record: Record) -> bool:
    """Saves ``record`` on the newest run of ``cfg``'s pipeline when it has no run id; False (logged) when it
    cannot: a run's outcome stands whatever happens to its record."""
    import logging

    from pipeline.run_summary import open_store, pipeline_runs

    try:
        if not record.run_id:
            runs = pipeline_runs(open_store(cfg.resolved_metadata_path), cfg.pipeline_name)
            if not runs:
                return False
            record.run_id = runs[-1].name
        save_record(cfg.resolved_metadata_path, cfg.pipeline_name, record)
        return True
    except Exception as e:  # noqa: BLE001
        logging.getLogger(__name__).warning("could not remember the run in %s: %s", cfg.resolved_metadata_path, e)
        return False
