"""The docs say what the code does: generated reference, module map, README, nav.

The site itself is built with ``mkdocs build --strict`` by .ci/build-docs (broken links
and anchors); these tests cover what a build cannot see: a reference that lags behind
the models or the commands, a module map that lags behind taskkit/, a README that grew
back into a manual or shows figures the benchmarks no longer give.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS_URL = "https://github.com/flask-taskkit/flask-taskkit/blob/main/docs/"


def gen_reference() -> ModuleType:
    """docs/gen_reference.py, imported from its path (docs/ is not a package)."""
    spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_generated_reference_matches_the_models_and_the_commands() -> None:
    stale = gen_reference().stale_pages()
    assert not stale, f"out of date: {stale}; run python docs/gen_reference.py and commit"


def test_a_key_without_a_description_stops_the_generator() -> None:
    generator = gen_reference()
    schema = generator.json_schema()
    schema["$defs"]["JobConfig"]["properties"]["new_key"] = {"type": "string"}
    with pytest.raises(generator.StaleReferenceError, match=r"JobConfig\.new_key"):
        generator.key_tables(schema)


def module_map() -> set[str]:
    """The modules the design page's module map names (its first column)."""
    text = (DOCS / "design.md").read_text(encoding="utf-8")
    table = text.split("## Module map", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(taskkit/[\w/]+\.py)` \|", table, re.MULTILINE))


def test_the_module_map_names_every_module_and_only_those() -> None:
    modules = {path.relative_to(ROOT).as_posix() for path in (ROOT / "taskkit").rglob("*.py")}
    mapped = module_map()
    assert not modules - mapped, f"add to the module map in docs/design.md: {modules - mapped}"
    assert not mapped - modules, f"the module map names modules that are gone: {mapped - modules}"


def nav_pages() -> set[str]:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))

    def walk(node: object) -> set[str]:
        if isinstance(node, str):
            return {node}
        if isinstance(node, list):
            return set().union(*(walk(item) for item in node))
        if isinstance(node, dict):
            return set().union(*(walk(value) for value in node.values()))
        return set()

    return walk(config["nav"])


def test_every_page_is_in_the_nav_and_every_nav_entry_is_a_page() -> None:
    pages = {path.name for path in DOCS.glob("*.md")}
    assert nav_pages() == pages


def test_the_readme_is_a_front_door_that_links_into_the_docs() -> None:
    assert len(README) <= 15_000, "the README is the front door: move details into docs/"
    linked = set(re.findall(re.escape(DOCS_URL) + r"([\w-]+\.md)", README))
    assert linked, "the README links into the docs"
    assert not linked - nav_pages(), f"README links to pages that do not exist: {linked}"
    for command in ("bash examples/quickstart.sh", "bash .ci/run", "pip install flask-taskkit"):
        assert command in README


def measured_figures() -> list[float]:
    """Every number in the "measured" column of benchmarks/results.md's targets."""
    results = (ROOT / "benchmarks" / "results.md").read_text(encoding="utf-8")
    targets = results.split("## Targets", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|") for line in targets.splitlines() if line.startswith("| ")]
    return [float(n) for row in rows[2:] for n in re.findall(r"\d+(?:\.\d+)?", row[2])]


def test_the_readmes_performance_figures_are_those_of_the_benchmark_report() -> None:
    section = README.split("## Performance", 1)[1].split("\n## ", 1)[0]
    shown = re.findall(r"\*\*([^*]+)\*\*", section)
    assert len(shown) >= 8
    figures = measured_figures()
    for text in shown:
        for number in re.findall(r"\d+(?:\.\d+)?", text):
            decimals = len(number.partition(".")[2])
            assert any(round(f, decimals) == float(number) for f in figures), (
                f"README's Performance shows {text!r}, which benchmarks/results.md does not "
                "measure: copy the current figures from its Targets table"
            )
