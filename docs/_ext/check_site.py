"""Check the built site's links offline: ``python docs/_ext/check_site.py docs/_build/html``.

Every ``href`` and ``src`` inside the site must name a file that exists, and every
``#fragment`` an ``id`` on the page it points to (Sphinx's own checks cover references
between documents; this covers what ends up in the HTML: raw links, images, anchors made by
MyST, the theme's pages). External links (http, https, mailto) cannot be fetched from the
build machine: they are listed with ``--external`` and checked by ``make linkcheck``
where there is a network. Also checked: each name of ``couchmapper.__all__`` has its
entry on the API page. Exit status 1 on any problem, with one line per problem.
"""

from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("id", "name") and value:
                self.ids.add(value)
            elif value and (
                (name == "href" and tag in ("a", "link")) or (name == "src" and tag != "iframe")
            ):
                self.links.append(value)


def _parse(path: Path, cache: dict[Path, _Page]) -> _Page:
    if path not in cache:
        page = _Page()
        page.feed(path.read_text(encoding="utf-8"))
        cache[path] = page
    return cache[path]


def check(site: Path) -> tuple[list[str], set[str]]:
    """The problems found and the external links seen."""
    problems: list[str] = []
    external: set[str] = set()
    cache: dict[Path, _Page] = {}
    pages = sorted(site.rglob("*.html"))
    if not (site / "index.html").is_file():
        return [f"{site}: no index.html (was the site built?)"], external
    for path in pages:
        page = _parse(path, cache)
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme in ("http", "https", "mailto", "data"):
                if parts.scheme != "data":
                    external.add(link)
                continue
            if parts.scheme or link.startswith("//"):
                problems.append(f"{path.relative_to(site)}: unexpected link {link}")
                continue
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                problems.append(f"{path.relative_to(site)}: broken link {link}")
                continue
            fragment = unquote(parts.fragment)
            if fragment and target.suffix == ".html" and fragment not in _parse(target, cache).ids:
                problems.append(f"{path.relative_to(site)}: missing anchor {link}")
    problems += _check_api(site, cache)
    return problems, external


def _check_api(site: Path, cache: dict[Path, _Page]) -> list[str]:
    import couchmapper

    api = site / "api.html"
    if not api.is_file():
        return ["api.html is missing"]
    ids = _parse(api, cache).ids
    return [
        f"api.html: couchmapper.{name} is not documented"
        for name in couchmapper.__all__
        if f"couchmapper.{name}" not in ids and f"module-couchmapper.{name}" not in ids
    ]


def main(argv: list[str]) -> int:
    """Check the site named on the command line; print the problems."""
    site = Path(argv[1]) if len(argv) > 1 else Path("docs/_build/html")
    problems, external = check(site)
    for problem in problems:
        print(problem)
    if "--external" in argv:
        for link in sorted(external):
            print(f"external (not fetched): {link}")
    pages = len(list(site.rglob("*.html")))
    print(
        f"check_site: {pages} pages, {len(problems)} problem(s), "
        f"{len(external)} external link(s) not fetched (make linkcheck)"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
