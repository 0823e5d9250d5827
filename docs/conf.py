"""Sphinx configuration for the couchmapper documentation site (``make docs``).

Pages are Markdown (MyST), so they read the same on GitHub and in the built site; the API
reference comes from the docstrings of ``couchmapper.__all__`` (``_ext/cm_api.py``), and
``mermaid`` code fences become diagrams drawn in the browser by a vendored copy of mermaid
(no CDN: the built site works offline, from ``file://`` too).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

project = "couchmapper"
author = "the couchmapper authors"
copyright = "2026, the couchmapper authors"  # noqa: A001 - Sphinx's name for it

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "cm_mermaid",
    "cm_api",
]

# Only the pages of the site: the vendored npm tree, the build and the generated fragments
# (included by other pages) are not pages themselves.
exclude_patterns = ["_build", "_mermaid", "_generated", "node_modules", "**/node_modules"]
source_suffix = {".md": "markdown"}
root_doc = "index"

# MyST: GitHub-style heading anchors (the links between pages work on GitHub and here) and
# ```mermaid fences as diagrams (GitHub draws those itself).
myst_heading_anchors = 4
myst_fence_as_directive = ["mermaid"]
myst_enable_extensions = ["colon_fence", "deflist"]

# autodoc + napoleon: Google-style docstrings, signatures with their annotations.
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True
add_module_names = False

# Every reference must resolve (-n): references into couchmapper resolve to the public names
# (_ext/cm_api.py); the standard library and third-party types are not linked (intersphinx
# would fetch their inventories from the internet at build time).
nitpicky = True
nitpick_ignore_regex = [
    ("py:.*", r"(collections|typing|types|abc|enum|datetime|decimal|uuid|re)(\..*)?"),
    ("py:.*", r"(blinker|attrs|attr|cattrs|couchdb|pydantic|sqlalchemy)(\..*)?"),
    ("py:.*", r"(couchmapper\..*\.)?[A-Z]"),  # type variables (D, T) in signatures
    ("py:.*", r"(Any|Callable|Iterator|Iterable|Sequence|Mapping|Self|TypeVar|NoneType)"),
]

html_theme = "furo"
html_title = "couchmapper"
html_static_path = ["_static"]
html_css_files = ["couchmapper.css"]
html_show_sourcelink = False
html_theme_options = {
    "source_repository": "",
    "navigation_with_keys": True,
}

# External links are not fetched by `make docs` (the build machine has no internet);
# `make linkcheck` checks them where there is a network.
linkcheck_anchors = True
linkcheck_timeout = 10
