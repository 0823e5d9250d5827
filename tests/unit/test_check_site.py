"""The offline link check of the built documentation site (docs/_ext/check_site.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import couchmapper as cm

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "_ext" / "check_site.py"


def _checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_site", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _site(tmp_path: Path, index_body: str) -> Path:
    api_ids = "".join(f'<dt id="couchmapper.{name}"></dt>' for name in cm.__all__)
    (tmp_path / "api.html").write_text(f"<html><body>{api_ids}</body></html>")
    (tmp_path / "page.html").write_text('<h2 id="there">x</h2><img src="_static/a.svg">')
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "a.svg").write_text("<svg/>")
    (tmp_path / "index.html").write_text(f"<html><body>{index_body}</body></html>")
    return tmp_path


def test_a_sound_site_passes_and_external_links_are_only_listed(tmp_path: Path) -> None:
    """Links to files and anchors that exist pass; http(s) links are collected, not fetched."""
    site = _site(
        tmp_path,
        '<a href="page.html#there">a</a><a href="#top" id="top">b</a>'
        '<a href="https://example.org/x">c</a><link href="_static/a.svg">',
    )
    problems, external = _checker().check(site)
    assert problems == []
    assert external == {"https://example.org/x"}


def test_broken_files_anchors_and_api_entries_are_reported(tmp_path: Path) -> None:
    """A missing page, a missing anchor and an undocumented public name are each one line."""
    site = _site(tmp_path, '<a href="gone.html">a</a><a href="page.html#nowhere">b</a>')
    api = site / "api.html"
    api.write_text(api.read_text().replace('<dt id="couchmapper.Session"></dt>', ""))
    problems, _ = _checker().check(site)
    assert problems == [
        "index.html: broken link gone.html",
        "index.html: missing anchor page.html#nowhere",
        "api.html: couchmapper.Session is not documented",
    ]
