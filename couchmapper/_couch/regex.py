"""Mango's ``$regex``: PCRE patterns run as Erlang's ``re`` runs them, over UTF-8 bytes."""

from __future__ import annotations

import re
import warnings
from functools import lru_cache

__all__ = ["compile_regex"]


@lru_cache(maxsize=1024)
def compile_regex(pattern: str) -> re.Pattern[bytes] | None:
    """Compile a PCRE pattern as Erlang's ``re`` would run it (bytes, no Unicode mode)."""
    translated = _translate_pcre(pattern)
    try:
        with warnings.catch_warnings():
            # "possible nested set" and friends must not escape as errors under -W error.
            warnings.simplefilter("ignore")
            return re.compile(translated.encode("utf-8", "surrogatepass"))
    except (re.error, OverflowError, RecursionError):
        return None


_PCRE_ESCAPES = {
    "z": r"\Z",
    "Z": r"(?=\n?\Z)",
    "h": r"[\t \xa0]",
    "H": r"[^\t \xa0]",
    "e": r"\x1b",
    "R": r"(?:\r\n|[\n\x0b\x0c\r\x85])",
}


def _translate_pcre(pattern: str) -> str:
    """Rewrite the PCRE-only syntax that Python's ``re`` spells differently."""
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\" and i + 1 < len(pattern):
            escaped = pattern[i + 1]
            replacement = _PCRE_ESCAPES.get(escaped)
            if replacement is not None and not in_class:
                out.append(replacement)
            elif escaped == "e":
                out.append(r"\x1b")
            else:
                out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = char != "]" or (bool(out) and out[-1] in ("[", "[^"))
            out.append(char)
        elif char == "[":
            in_class = True
            if pattern.startswith("[^", i):
                out.append("[^")
                i += 2
                continue
            out.append(char)
        elif pattern.startswith("(?<", i) and i + 3 < len(pattern) and pattern[i + 3] not in "=!":
            # PCRE named group (?<name>...) is Python's (?P<name>...).
            out.append("(?P<")
            i += 3
            continue
        else:
            out.append(char)
        i += 1
    return "".join(out)
