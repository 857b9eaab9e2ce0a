"""The documentation says only what exists: its links resolve, its `tfxp` commands and flags are the
command line's, its `make` targets are the Makefile's, and the README stays a front page.

Reads README.md and docs/*.md as text and the `tfxp` parser in-process (pipeline/cli.py
`build_parser`, which imports no TensorFlow); runs no pipeline.
"""
from __future__ import annotations

import argparse
import functools
import os
import re
import shlex
import unicodedata
from typing import Dict, Iterator, List, Set, Tuple

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
README = os.path.join(REPO, "README.md")
DOCS = os.path.join(REPO, "docs")
README_MAX_LINES = 300


def doc_files() -> List[str]:
    return [README] + sorted(os.path.join(DOCS, name) for name in os.listdir(DOCS) if name.endswith(".md"))


def doc_id(path: str) -> str:
    return os.path.relpath(path, REPO)


DOC_PARAMS = [pytest.param(path, id=doc_id(path)) for path in doc_files()]


# --- reading markdown ---------------------------------------------------------------------------

FENCE = re.compile(r"^\s*(```|~~~)")


def split_fenced(text: str) -> Tuple[List[str], List[str]]:
    """(the lines outside fenced code blocks, with the blocks' lines blanked; the lines inside them)."""
    prose, code, inside = [], [], False
    for line in text.split("\n"):
        if FENCE.match(line):
            inside = not inside
            prose.append("")
            continue
        if inside:
            code.append(line)
            prose.append("")
        else:
            prose.append(line)
    return prose, code


INLINE_CODE = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)", re.DOTALL)


def inline_code_spans(prose: str) -> List[str]:
    return [re.sub(r"\s+", " ", m.group(2)).strip() for m in INLINE_CODE.finditer(prose)]


def without_inline_code(prose: str) -> str:
    return INLINE_CODE.sub(lambda m: " " * len(m.group(0)), prose)


def code_block_commands(code_lines: List[str]) -> List[str]:
    """The lines of code blocks joined across trailing backslashes, comments cut."""
    joined, pending = [], ""
    for line in code_lines:
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    if pending:
        joined.append(pending)
    return [re.sub(r"(^|\s)#.*$", "", line).strip() for line in joined]


@functools.lru_cache(maxsize=None)
def read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text lower-cased, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = unicodedata.normalize("NFC", text.strip().lower())
    text = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in "LN")
    return text.replace(" ", "-")


@functools.lru_cache(maxsize=None)
def anchors_of(path: str) -> Set[str]:
    prose, _ = split_fenced(read(path))
    anchors, seen = set(), {}
    for line in prose:
        m = re.match(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        slug = github_slug(m.group(2))
        n = seen.get(slug, 0)
        anchors.add(slug if n == 0 else f"{slug}-{n}")
        seen[slug] = n + 1
    return anchors


LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def relative_links(path: str) -> List[str]:
    prose, _ = split_fenced(read(path))
    text = without_inline_code("\n".join(prose))
    return [target for target in LINK.findall(text)
            if not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target)]  # http:, https:, mailto:, ...


# --- what the docs show -------------------------------------------------------------------------

SHELL_BREAK = {"|", "||", "&&", ";", ">", ">>", "<", "2>", "&"}


def command_texts(path: str) -> List[str]:
    """Every command shown: a code block's line, or an inline code span."""
    prose, code = split_fenced(read(path))
    return code_block_commands(code) + inline_code_spans("\n".join(prose))


def tfxp_invocations(command: str) -> Iterator[List[str]]:
    """The arguments after each `tfxp` (or `.venv/bin/tfxp`) that starts a command in ``command``."""
    for part in re.split(r"\s*(?:&&|\|\||;|\|)\s*", command):
        part = part.strip()
        m = re.match(r"^(?:[A-Z_]+=\S*\s+)*(?:\$\s+)?(?:\S*/)?tfxp(?:\s+(.*))?$", part)
        if not m:
            continue
        rest = m.group(1) or ""
        try:
            args = shlex.split(rest)
        except ValueError:  # an unbalanced quote in a shortened example: its words will do
            args = rest.split()
        cut = next((i for i, a in enumerate(args) if a in SHELL_BREAK), len(args))
        yield args[:cut]


def make_targets_shown(path: str) -> List[str]:
    targets = []
    for command in command_texts(path):
        for part in re.split(r"\s*(?:&&|\|\||;|\|)\s*", command):
            m = re.match(r"^(?:[A-Z_]+=\S*\s+)*make((?:\s+[A-Za-z_][\w.-]*)*)", part.strip())
            if m:
                targets += [t for t in m.group(1).split() if "=" not in t]
    return targets


# --- the command line and the Makefile ------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def tfxp_parser() -> argparse.ArgumentParser:
    from pipeline.cli import build_parser
    return build_parser()


def subparsers(parser: argparse.ArgumentParser) -> Dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def flags_of(parser: argparse.ArgumentParser) -> Set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def makefile_targets() -> Set[str]:
    targets = set()
    for line in read(os.path.join(REPO, "Makefile")).split("\n"):
        m = re.match(r"^([A-Za-z0-9_.-][A-Za-z0-9_. -]*?)\s*::?(?!=)", line)
        if m:
            targets.update(m.group(1).split())
    return targets


def tfxp_usage_problems(args: List[str]) -> List[str]:
    """What in one `tfxp ARGS...` the parser does not know: the subcommand, or a --flag."""
    top = tfxp_parser()
    commands = subparsers(top)
    words = list(args)
    while words and words[0].startswith("-"):
        flag = words.pop(0).split("=", 1)[0]
        if flag not in flags_of(top):
            return [f"tfxp {flag}: not a flag of tfxp"]
    if not words or not re.fullmatch(r"[a-z][a-z-]*", words[0]):
        return []  # `tfxp`, `tfxp COMMAND`, `tfxp run:` (a message, not a command)
    name = words.pop(0)
    if name not in commands:
        return [f"tfxp {name}: no such subcommand (tfxp has: {', '.join(sorted(commands))})"]
    known = flags_of(commands[name])
    return [f"tfxp {name} {flag}: no such flag" for flag in (w.split("=", 1)[0] for w in words)
            if flag.startswith("--") and len(flag) > 2 and flag not in known]


# --- the tests -----------------------------------------------------------------------------------

def test_the_readme_is_a_front_page_of_at_most_300_lines():
    lines = read(README).count("\n") + (0 if read(README).endswith("\n") else 1)
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move reference material into docs/"


@pytest.mark.parametrize("path", DOC_PARAMS)
def test_every_relative_link_and_image_resolves(path):
    broken = []
    for target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        resolved = os.path.normpath(os.path.join(os.path.dirname(path), file_part)) if file_part else path
        if not os.path.exists(resolved):
            broken.append(f"{target}: {doc_id(resolved)} does not exist")
        elif anchor and resolved.endswith(".md") and anchor not in anchors_of(resolved):
            broken.append(f"{target}: {doc_id(resolved)} has no heading with the anchor #{anchor}")
    assert not broken, f"{doc_id(path)}:\n  " + "\n  ".join(broken)


@pytest.mark.parametrize("path", DOC_PARAMS)
def test_every_tfxp_command_shown_names_a_subcommand_and_flags_that_exist(path):
    problems = []
    for command in command_texts(path):
        for args in tfxp_invocations(command):
            problems += [f"{p}   (in: {command})" for p in tfxp_usage_problems(args)]
    assert not problems, f"{doc_id(path)}:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("path", DOC_PARAMS)
def test_every_make_target_shown_is_in_the_makefile(path):
    missing = sorted(set(make_targets_shown(path)) - makefile_targets())
    assert not missing, f"{doc_id(path)} shows make targets the Makefile does not have: {missing}"


def test_the_readme_shows_the_two_commands_and_links_every_docs_page():
    text = read(README)
    assert re.search(r"^make run\s+#", text, re.M) and re.search(r"^make test\s+#", text, re.M)
    linked = {os.path.normpath(os.path.join(REPO, t.partition("#")[0])) for t in relative_links(README)}
    unlinked = [doc_id(p) for p in doc_files()[1:] if p not in linked]
    assert not unlinked, f"docs pages the README does not link: {unlinked}"


# --- the checks check: they catch what they are for -----------------------------------------------

def test_the_command_check_catches_an_unknown_subcommand_and_an_unknown_flag():
    assert tfxp_usage_problems(["run", "--force"]) == []
    assert tfxp_usage_problems(["--verbose", "run", "--set", "a=b"]) == []
    assert tfxp_usage_problems(["serve", "--model_config_file=x"]) == []
    assert tfxp_usage_problems(["runn"]) and tfxp_usage_problems(["run", "--forse"])
    assert tfxp_usage_problems(["COMMAND"]) == [] and tfxp_usage_problems(["run:", "error:"]) == []


def test_commands_are_found_in_code_blocks_and_inline_code_only():
    lines = code_block_commands(["tfxp serve \\", "    --port 9000   # a comment --nope",
                                 "# tfxp serve: gRPC on 127.0.0.1:8500", "x && .venv/bin/tfxp runs --last 3"])
    found = [args for line in lines for args in tfxp_invocations(line)]
    assert found == [["serve", "--port", "9000"], ["runs", "--last", "3"]]
    assert inline_code_spans("run `tfxp run\n--force` or ``a `b` c``") == ["tfxp run --force", "a `b` c"]


def test_slugs_are_githubs():
    assert github_slug("What `tfxp run` prints") == "what-tfxp-run-prints"
    assert github_slug("The loop's figures") == "the-loops-figures"
    assert github_slug("`input_bench`: the input pipeline and strategies") == \
        "input_bench-the-input-pipeline-and-strategies"
    assert github_slug("Caching: only what an edit affects re-runs") == "caching-only-what-an-edit-affects-re-runs"
