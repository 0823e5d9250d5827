"""A ``mermaid`` directive drawn in the browser by a vendored mermaid, never a CDN.

MyST turns each ```mermaid code fence into this directive (``myst_fence_as_directive``); in
HTML it becomes ``<pre class="mermaid">`` with the diagram's source, which
``_static/vendor/mermaid.min.js`` (copied from the npm package pinned in ``_mermaid/`` by
``make docs``) draws when the page loads. The script is a classic one (not an ES module),
so the pages draw their diagrams when opened from ``file://`` as well. Only pages with a
diagram load it.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError

VENDORED = "vendor/mermaid.min.js"


class mermaid(nodes.General, nodes.Element):  # noqa: N801 - docutils names nodes in lower case
    """A diagram's source."""


class MermaidDirective(Directive):
    """``{mermaid}``: the content is the diagram in mermaid's syntax."""

    has_content = True

    def run(self) -> list[nodes.Node]:
        source = "\n".join(self.content).strip()
        if not source:
            msg = "an empty mermaid diagram"
            raise self.error(msg)
        env = self.state.document.settings.env
        env.cm_mermaid_docs = getattr(env, "cm_mermaid_docs", set()) | {env.docname}
        return [mermaid(source=source)]


def _html(translator: Any, node: mermaid) -> None:
    translator.body.append(f'<pre class="mermaid">\n{html.escape(node["source"])}\n</pre>\n')
    raise nodes.SkipNode


def _skip(translator: Any, node: mermaid) -> None:
    # Builders without a browser (linkcheck, text, ...) leave diagrams out.
    raise nodes.SkipNode


def _check_vendored(app: Sphinx) -> None:
    if app.builder.format != "html":
        return
    if not (Path(app.srcdir) / "_static" / VENDORED).is_file():
        msg = (
            f"docs/_static/{VENDORED} is missing: `make docs` copies it from the npm package "
            "pinned in docs/_mermaid (npm ci there)"
        )
        raise ExtensionError(msg)


def _page(app: Sphinx, pagename: str, *_: Any) -> None:
    if pagename in getattr(app.env, "cm_mermaid_docs", ()):
        app.add_js_file(VENDORED)
        app.add_js_file("mermaid-init.js")


def _purge(app: Sphinx, env: Any, docname: str) -> None:
    getattr(env, "cm_mermaid_docs", set()).discard(docname)


def _merge(app: Sphinx, env: Any, docnames: set[str], other: Any) -> None:
    env.cm_mermaid_docs = getattr(env, "cm_mermaid_docs", set()) | getattr(
        other, "cm_mermaid_docs", set()
    )


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the directive, its node and the page hooks."""
    app.add_node(
        mermaid,
        html=(_html, None),
        text=(_skip, None),
        latex=(_skip, None),
        man=(_skip, None),
        texinfo=(_skip, None),
    )
    app.add_directive("mermaid", MermaidDirective)
    app.connect("builder-inited", _check_vendored)
    app.connect("html-page-context", _page)
    app.connect("env-purge-doc", _purge)
    app.connect("env-merge-info", _merge)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
