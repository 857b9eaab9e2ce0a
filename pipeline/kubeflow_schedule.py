"""`tfxp submit --schedule CRON`: a recurring run of the compiled pipeline on Kubeflow Pipelines.

KFP runs a schedule from a stored pipeline version, not from a file. The compiled package is uploaded
as a version of the pipeline (the pipeline is created, without a version, when none has its name)
named after the package's content::

    <pipeline>-<first 12 hex digits of sha256(package bytes)>      e.g. chicago-taxi-3f2a9c1b7d4e

The package holds the resolved config (paths, steps, thresholds, image) and the code fingerprints of
every component that runs project code (pipeline/code_fingerprint.py), and compiling is
deterministic (two compiles of the same code and config give the same bytes; tested), so the name
changes exactly when what the schedule would run changes. Submitting again with nothing changed
reuses the version (the upload is idempotent); `--package` names the package it uploads, whoever
compiled it.

A schedule is found by its name (`--schedule-name`, default: the pipeline's) in its experiment: the
same settings again leave it as it is; other settings (a new version, cron, concurrency, catchup)
need ``--replace``, which creates the new recurring run and then deletes the old one, so two
schedules of one name never run side by side.

Cron: KFP's format (robfig/cron, evaluated in UTC), 6 fields with seconds first, checked here before
anything is sent: a common 5-field crontab line would otherwise be read with its minute as seconds.
Catchup: KFP's default (on): after a pause, the missed intervals run one by one; ``--no-catchup`` runs
only the latest.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from typing import Any, Dict, Optional, Sequence

from pipeline.config import PipelineConfig
from pipeline.kubeflow_runner import SubmitError, check_reachable, package_to_submit, run_arguments
from tfxp.errors import TfxpError

log = logging.getLogger(__name__)

CRON_FORMAT = ("KFP's cron: 6 fields, second minute hour day-of-month month day-of-week, in UTC; "
               "e.g. '0 0 3 * * *' is 03:00 every day")
MAX_CONCURRENCY = 10  # the KFP API server refuses more (recurring_run_server.go)
DEFAULT_EXPERIMENT = "Default"  # kfp.Client's default experiment
_MONTHS = {name: i + 1 for i, name in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}
_DAYS = {name: i for i, name in enumerate("sun mon tue wed thu fri sat".split())}
# (name, lowest, highest, names) per field, as robfig/cron reads them.
_CRON_FIELDS = (("second", 0, 59, {}), ("minute", 0, 59, {}), ("hour", 0, 23, {}),
                ("day-of-month", 1, 31, {}), ("month", 1, 12, _MONTHS), ("day-of-week", 0, 6, _DAYS))


class ScheduleError(ValueError, TfxpError):
    """A schedule flag KFP would refuse or misread: one line naming the flag and the expected form."""


def check_cron(cron: str) -> str:
    """The cron expression with single spaces, or ScheduleError saying which field is wrong and why."""
    fields = cron.split()
    flag = f"--schedule {cron!r}"
    if len(fields) == 5:
        raise ScheduleError(f"{flag}: 5 fields, but {CRON_FORMAT}. KFP would read this one's first field as "
                            f"seconds; for the usual crontab meaning put the seconds first: '0 {' '.join(fields)}'")
    if len(fields) != 6:
        raise ScheduleError(f"{flag}: {len(fields)} field(s), but {CRON_FORMAT}")
    for text, (name, low, high, names) in zip(fields, _CRON_FIELDS):
        for part in text.split(","):
            problem = _cron_part_problem(part, low, high, names)
            if problem:
                raise ScheduleError(f"{flag}: {name} field {text!r}: {problem} ({CRON_FORMAT})")
    return " ".join(fields)


def _cron_part_problem(part: str, low: int, high: int, names: Dict[str, int]) -> str:
    """'' when ``part`` (``*``, ``?``, ``N``, ``N-M``, each with an optional ``/STEP``) fits the field."""
    span, slash, step = part.partition("/")
    if slash and not (step.isdigit() and int(step) > 0):
        return f"step {step!r} is not a positive whole number"
    if span in ("*", "?"):
        return ""
    ends = span.split("-")
    if len(ends) > 2:
        return f"{span!r} has more than one '-'"
    values = []
    for end in ends:
        value = names.get(end.lower(), int(end) if end.isdigit() else None)
        if value is None:
            return f"{end!r} is not a number" + (f" or a name ({', '.join(names)})" if names else "")
        if not low <= value <= high:
            return f"{end} is outside {low}-{high}"
        values.append(value)
    if values[0] > values[-1]:
        return f"the range {span} runs backwards"
    return ""


def version_name(package_path: str) -> tuple:
    """(pipeline name, version name, sha256 hex) of a compiled package: the version is named after its bytes."""
    import yaml

    with open(package_path, "rb") as f:
        content = f.read()
    try:
        name = yaml.safe_load(content)["pipelineInfo"]["name"]
    except (yaml.YAMLError, TypeError, KeyError) as e:
        raise SubmitError(f"{package_path}: not a compiled KFP v2 pipeline (no pipelineInfo.name: "
                          f"{type(e).__name__}); compile it with tfxp compile") from None
    digest = hashlib.sha256(content).hexdigest()
    return name, f"{name}-{digest[:12]}", digest


@dataclasses.dataclass
class Schedule:
    """What `tfxp submit --schedule` left on the KFP host."""
    pipeline: str
    pipeline_id: str
    pipeline_created: bool
    version: str
    version_id: str
    version_uploaded: bool
    package: str
    experiment: str
    name: str
    recurring_run_id: str
    outcome: str  # created | unchanged | replaced <old ids>
    cron: str
    max_concurrency: int
    catchup: bool

    def describe(self) -> str:
        version = f"uploaded from {self.package}" if self.version_uploaded else "already there, reused"
        timing = (f"cron '{self.cron}' (UTC), at most {self.max_concurrency} run(s) at a time, "
                  f"catchup {'on' if self.catchup else 'off'}, enabled")
        return "\n".join([
            f"pipeline      {self.pipeline} (id {self.pipeline_id}{', created' if self.pipeline_created else ''})",
            f"version       {self.version} (id {self.version_id}, {version})",
            f"recurring run {self.name} (id {self.recurring_run_id}, {self.outcome}) in experiment "
            f"{self.experiment!r}: {timing}"])


def _by_name(name: str) -> str:
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]})


def _api_error(host: str, what: str, error) -> SubmitError:
    body = (getattr(error, "body", None) or "").strip().replace("\n", " ")
    return SubmitError(f"Kubeflow Pipelines at {host} refused to {what}: {getattr(error, 'status', '')} "
                       f"{getattr(error, 'reason', '')} {body[:300]}".rstrip())


def _same_schedule(run, version_id: str, cron: str, max_concurrency: int, catchup: bool, params: dict) -> bool:
    reference = run.pipeline_version_reference
    trigger = run.trigger.cron_schedule if run.trigger else None
    return (reference is not None and reference.pipeline_version_id == version_id
            and trigger is not None and trigger.cron == cron
            and int(run.max_concurrency or 0) == max_concurrency and bool(run.no_catchup) == (not catchup)
            and str(run.mode) == "ENABLE"
            and dict((run.runtime_config.parameters if run.runtime_config else None) or {}) == params)


def _settings(run) -> str:
    reference, trigger = run.pipeline_version_reference, run.trigger and run.trigger.cron_schedule
    return (f"id {run.recurring_run_id}: version id {reference.pipeline_version_id if reference else None}, "
            f"cron {trigger.cron if trigger else None!r}, max concurrency {run.max_concurrency}, "
            f"catchup {'off' if run.no_catchup else 'on'}, "
            f"{ {'ENABLE': 'enabled', 'DISABLE': 'disabled'}.get(str(run.mode), str(run.mode))}")


def schedule(cfg: PipelineConfig, host: str, cron: str, *, package_path: Optional[str] = None,
             experiment: Optional[str] = None, name: Optional[str] = None, max_concurrency: int = 1,
             catchup: bool = True, replace: bool = False, params: Sequence[str] = ()) -> Schedule:
    """Uploads the package as the version named after its content (reused when there) and creates an
    enabled recurring run of that version; ``params``: ``name=value`` run parameter values for every
    scheduled run (kubeflow_runner.run_arguments; the others keep their compiled defaults)."""
    import kfp
    from kfp_server_api import ApiException, V2beta1Pipeline

    cron = check_cron(cron)
    if not 1 <= max_concurrency <= MAX_CONCURRENCY:
        raise ScheduleError(f"--max-concurrency {max_concurrency}: KFP takes 1 to {MAX_CONCURRENCY} runs at a time")
    check_reachable(host)
    package_path = package_to_submit(cfg, package_path)
    params = run_arguments(package_path, params)
    pipeline_name, version, digest = version_name(package_path)
    name = name or pipeline_name
    experiment = experiment or DEFAULT_EXPERIMENT
    client = kfp.Client(host=host)
    step = "find the pipeline"
    try:
        pipeline_id, pipeline_created = client.get_pipeline_id(pipeline_name), False
        if pipeline_id is None:
            step = "create the pipeline"
            body = V2beta1Pipeline(display_name=pipeline_name, description="uploaded by tfxp submit --schedule; "
                                   "versions: <pipeline>-<sha256 of the compiled package>")
            pipeline_id, pipeline_created = client.pipelines.create_pipeline(body=body).pipeline_id, True
        step = "list the pipeline's versions"
        found = client.list_pipeline_versions(pipeline_id, filter=_by_name(version)).pipeline_versions or []
        if found:
            version_id, uploaded = found[0].pipeline_version_id, False
        else:
            step = "upload the pipeline version"
            version_id = client.upload_pipeline_version(
                package_path, version, pipeline_id=pipeline_id,
                description=f"{os.path.basename(package_path)}, sha256 {digest}").pipeline_version_id
            uploaded = True
        step = f"find or create the experiment {experiment!r}"
        experiment_id = client.create_experiment(name=experiment).experiment_id
        step = "list the recurring runs"
        existing = client.list_recurring_runs(experiment_id=experiment_id, filter=_by_name(name)).recurring_runs or []
        same = [r for r in existing if _same_schedule(r, version_id, cron, max_concurrency, catchup, params)]
        result = dict(pipeline=pipeline_name, pipeline_id=pipeline_id, pipeline_created=pipeline_created,
                      version=version, version_id=version_id, version_uploaded=uploaded, package=package_path,
                      experiment=experiment, name=name, cron=cron, max_concurrency=max_concurrency, catchup=catchup)
        if same and len(existing) == 1:
            return Schedule(recurring_run_id=same[0].recurring_run_id, outcome="unchanged", **result)
        if existing and not replace:
            old = "; ".join(_settings(r) for r in existing)
            raise SubmitError(f"experiment {experiment!r} already has a recurring run named {name!r} with other "
                              f"settings ({old}): pass --replace to replace it, or --schedule-name for another one")
        step = "create the recurring run"
        run = client.create_recurring_run(
            experiment_id, name, cron_expression=cron, pipeline_id=pipeline_id, version_id=version_id,
            params=params, max_concurrency=max_concurrency, no_catchup=not catchup, enabled=True)
        for old in existing:  # after the new one exists: never a moment without a schedule
            step = f"delete the replaced recurring run {old.recurring_run_id}"
            client.delete_recurring_run(old.recurring_run_id)
    except ApiException as e:
        raise _api_error(host, step, e) from None
    outcome = f"replaced {', '.join(r.recurring_run_id for r in existing)}" if existing else "created"
    log.info("scheduled %s (version %s) on %s: %s", pipeline_name, version, host, cron)
    return Schedule(recurring_run_id=run.recurring_run_id, outcome=outcome, **result)
