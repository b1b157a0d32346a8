"""Sphinx configuration of the docs site: ``make docs`` builds it into ``docs/_build/html`` (git-ignored).

Why Sphinx (with MyST Markdown pages and the Furo theme) rather than mkdocs:
- It is what the official Airflow providers' docs are built with, and their how-to pages include every code snippet
  from a runnable example DAG between ``# [START name]`` and ``# [END name]`` markers. Their ``exampleinclude``
  directive lives in Airflow's own repository, not on PyPI; Sphinx's ``literalinclude`` with ``start-after`` and
  ``end-before`` includes by the same markers, so the example DAGs carry the markers an Airflow reader knows, and a
  snippet is never copied by hand.
- A warning fails the build (``sphinx-build -W --keep-going``): a marker that is gone, a file that moved, a broken
  cross-reference or a page outside the table of contents stops ``make docs`` and CI. mkdocs' ``--strict`` turns
  only some of its messages into failures, and its snippet include uses markers of its own syntax.
- MyST lets the pages stay Markdown, readable as they are in the repository (the README links into them).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.directives import code

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from airflow_provider_genmedia import __version__  # noqa: E402

project = "airflow-provider-genmedia"
author = "The airflow-provider-genmedia authors"
copyright = "2026, the airflow-provider-genmedia authors"
release = __version__
version = __version__

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.autosummary"]
# The API reference's module pages are reStructuredText that autosummary writes into api/ (git-ignored) at each build.
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "snippets", "constraints.txt"]

# The API reference (api.md): a page per module of the package, found by autosummary, filled from the docstrings.
autosummary_generate = True
templates_path = ["_templates"]
# A module documents what it defines, not what it re-exports (a re-exported class would be two targets of one name).
autodoc_default_options = {"members": True, "show-inheritance": True, "ignore-module-all": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"

# Headings get anchors down to level 3, so pages can link to a section: [Paying once](production.md#paying-once).
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence", "deflist"]

# Every reference must resolve; a page left out of a toctree or a bad link is a warning, and warnings fail. The API
# reference's types from other packages (Airflow, pydantic, the standard library ...) have no page here: the build
# reaches no other site's inventory, so only this package's own names must resolve.
nitpicky = True
# Private names and type variables have no page either.
nitpick_ignore_regex = [(r"py:.*", r"(?!airflow_provider_genmedia\.).*"), (r"py:.*", r".*\.(_\w+|T|ModelT)")]

html_theme = "furo"
html_title = f"airflow-provider-genmedia {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]
html_theme_options = {
    "navigation_with_keys": True,
}
html_show_sourcelink = False


#: A snippet marker line of the example DAGs: ``# [START name]`` or ``# [END name]``.
SNIPPET_MARKER = re.compile(r"^\s*# \[(START|END) [\w-]+\]\s*$")


class SnippetReader(code.LiteralIncludeReader):
    """``literalinclude``'s reader, less the marker lines of the snippets nested in the one included: the quick
    start shows the pipeline's three tasks at once, whose own pages include each of them."""

    def read(self, location: Any = None) -> tuple[str, int]:
        text, _ = super().read(location)
        kept = [line for line in text.splitlines(keepends=True) if not SNIPPET_MARKER.match(line)]
        return "".join(kept), len(kept)


def setup(app: Sphinx) -> dict[str, Any]:
    """Read every ``literalinclude`` with `SnippetReader` (the directive looks its reader up in its module)."""
    code.LiteralIncludeReader = SnippetReader  # type: ignore[misc]
    return {"parallel_read_safe": True}
