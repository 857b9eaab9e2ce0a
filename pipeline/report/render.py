"""The report's page: each section's content, from its reader, into the jinja2 template
pipeline/templates/report.html.j2."""
from __future__ import annotations

import logging
import os
from typing import Any, Dict

from pipeline.drift.verdict import read_latest
from pipeline.report.data import data_section
from pipeline.report.evaluation import evaluation_section, gate_in_words
from pipeline.report.formats import format_number, format_seconds, last_line
from pipeline.report.overview import components_section, header
from pipeline.report.push import push_section, tflite_section
from pipeline.report.runs import Run
from pipeline.report.training import training_section
from pipeline.report.tuning import tuning_section

log = logging.getLogger(__name__)

TEMPLATES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "templates")


def _section(name: str, build, *args) -> Dict[str, Any]:
    """``build(*args)``, or a one-line note when the artifacts cannot be read: the rest of the page still helps."""
    try:
        return build(*args)
    except Exception as e:  # noqa: BLE001  (any reader's failure; logged with its traceback)
        log.warning("the %s section could not be read", name, exc_info=True)
        return {"note": f"could not read the {name} of this run: {type(e).__name__}: {last_line(str(e))}"}


def page_context(run: Run, cfg) -> Dict[str, Any]:
    """The template's variables: one dict per section."""
    from pipeline.evaluation import describe_gate

    context = {"header": header(run),
               "data": _section("data", data_section, run),
               "tuning": _section("tuning", tuning_section, run),
               "training": _section("training", training_section, run),
               "evaluation": _section("evaluation", evaluation_section, run),
               "tflite": _section("TFLite", tflite_section, run),
               "components": _section("components", components_section, run)}
    # The gate this run applied (its eval config), else today's config's.
    gate = gate_in_words(context["evaluation"]) or describe_gate(cfg)
    context["push"] = _section("push", push_section, run, gate, cfg.resolved_pipeline_root)
    context["drift"] = read_latest(cfg)  # the newest `tfxp drift` check of this pipeline's data, if any
    return context


def render_template(name: str, **context) -> str:
    """A page from pipeline/templates/``name`` (autoescaped; an undefined variable is an error)."""
    import jinja2

    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True,
                                     undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    environment.filters.update(number=format_number, seconds=format_seconds)
    return environment.get_template(name).render(**context)


def render_report(run: Run, cfg) -> str:
    """The page of ``run`` (``cfg``: its pipeline's config) as HTML."""
    context = page_context(run, cfg)
    log.info("rendering the page...")
    return render_template("report.html.j2", **context)
