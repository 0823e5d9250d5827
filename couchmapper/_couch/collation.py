"""CouchDB's two orders over JSON values: view collation (ICU) and raw Erlang term order.

View collation is what CouchDB uses for view keys, Mango comparisons and Mango sorts::

    null < false < true < numbers < strings < arrays < objects

Numbers compare by value (``1 == 1.0``). Arrays compare element by element, a prefix first.
Objects compare key by key: the first keys (as strings), then the first values, then the second
pair, and so on; an object that runs out of pairs first is the smaller.

Strings compare by ICU's root collation. We do not depend on PyICU; instead we approximate the
Unicode Collation Algorithm with :mod:`unicodedata`, closely enough to reproduce every ordering
recorded from CouchDB 3.5 (``"" < " " < "~" < "😀" < "1" < "10" < "2" < "a" < "A" < "aa" <
"b" < "B" < "ba" < "e" < "é" = "e\\u0301" < "f" < "ß" < "z" < "Z" < "日本"``):

* primary level: letters without accents and case, so ``"a" = "A" = "á"``; whitespace before
  punctuation before symbols before currency before digits before letters; digits compare by
  their value; ``ß`` counts as ``ss``; Han ideographs come after every other script;
* secondary level: accents, so ``"e" < "é"``;
* tertiary level: case and compatibility forms, lower case first, so ``"a" < "A"``.

Canonically equivalent strings (``"é"`` and ``"e\\u0301"``) compare equal, as in CouchDB.

Raw order is Erlang's term order, which Mango uses for comparisons on ``_id`` (and which
``_all_docs`` uses for ids): for strings, plain code point order.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

__all__ = ["collate", "collation_key", "raw_collate", "raw_key"]

# ASCII punctuation and symbols in the order of the CLDR root collation (what ICU uses); code
# point order would put "~" after "z", and ICU puts "_" before "-".
_ASCII_PUNCTUATION = "_-,;:!?.'\"()[]{}@*/\\&#%"
_ASCII_SYMBOLS = "`^+<=>|~"
_ASCII_CURRENCY = "$"

# Primary weight groups, in ICU's reordering-group order.
_WHITESPACE, _PUNCTUATION, _SYMBOL, _CURRENCY, _DIGIT, _LETTER, _HAN, _UNASSIGNED = range(1, 9)
_GROUP_SHIFT = 1 << 22  # above every code point, so groups never interleave
_NON_ASCII_OFFSET = 0x200  # non-ASCII members of a group sort after the ASCII ones

_ASCII_RANKS: dict[str, int] = {
    **{c: _PUNCTUATION * _GROUP_SHIFT + i for i, c in enumerate(_ASCII_PUNCTUATION)},
    **{c: _SYMBOL * _GROUP_SHIFT + i for i, c in enumerate(_ASCII_SYMBOLS)},
    **{c: _CURRENCY * _GROUP_SHIFT + i for i, c in enumerate(_ASCII_CURRENCY)},
}
_WHITESPACE_CONTROLS = "\t\n\x0b\x0c\r\x85"

# Tertiary weights: lower case first, then compatibility forms and expansions, then upper case.
_TERTIARY_LOWER, _TERTIARY_VARIANT, _TERTIARY_UPPER = 0, 1, 2

_StringKey = tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]

# Type ranks of view collation.
_NULL, _FALSE, _TRUE, _NUMBER, _STRING, _ARRAY, _OBJECT = range(7)


def _is_han(code: int) -> bool:
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0xF900 <= code <= 0xFAFF
        or 0x20000 <= code <= 0x3FFFF
    )


def _primary(char: str) -> int | None:
    """The primary weight of one case-folded, accent-free character (None: ignorable)."""
    rank = _ASCII_RANKS.get(char)
    if rank is not None:
        return rank
    code = ord(char)
    category = unicodedata.category(char)
    if category == "Zs" or char in _WHITESPACE_CONTROLS or category in ("Zl", "Zp"):
        group, value = _WHITESPACE, code
    elif category in ("Cc", "Cf"):
        # Controls and format characters (ZWJ, soft hyphen...) are completely ignorable in ICU.
        return None
    elif category == "Nd":
        # Digits of every script share the primary weight of their value.
        group, value = _DIGIT, unicodedata.decimal(char)
    elif category[0] == "P":
        group, value = _PUNCTUATION, _NON_ASCII_OFFSET + code
    elif category == "Sc":
        group, value = _CURRENCY, _NON_ASCII_OFFSET + code
    elif category[0] == "S":
        group, value = _SYMBOL, _NON_ASCII_OFFSET + code
    elif category in ("Cn", "Co", "Cs"):
        group, value = _UNASSIGNED, code
    elif _is_han(code):
        group, value = _HAN, code
    else:
        group, value = _LETTER, code
    return group * _GROUP_SHIFT + value


@lru_cache(maxsize=1 << 16)
def _string_key(text: str) -> _StringKey:
    """A three-level sort key approximating ICU root collation for ``text``."""
    primaries: list[int] = []
    secondaries: list[int] = []
    tertiaries: list[int] = []
    for char in unicodedata.normalize("NFD", text):
        if unicodedata.combining(char):
            # An accent: only the secondary level sees it (1 + code point keeps it above the
            # "no accent" weight 0 that every base character gets).
            secondaries.append(1 + ord(char))
            continue
        compat = unicodedata.normalize("NFKD", char)
        is_upper = char != char.lower()
        for part in compat:
            if unicodedata.combining(part):
                secondaries.append(1 + ord(part))
                continue
            folded = part.casefold()
            if is_upper:
                tertiary = _TERTIARY_UPPER
            elif compat != char or len(folded) > 1:
                tertiary = _TERTIARY_VARIANT
            else:
                tertiary = _TERTIARY_LOWER
            for unit in folded:
                weight = _primary(unit)
                if weight is None:
                    continue
                primaries.append(weight)
                secondaries.append(0)
                tertiaries.append(tertiary)
    return tuple(primaries), tuple(secondaries), tuple(tertiaries)


def collation_key(value: Any) -> Any:
    """Return a sort key for a JSON value whose order is CouchDB's view collation.

    ``sorted(values, key=collation_key)`` sorts like a CouchDB view, and
    ``collation_key(a) == collation_key(b)`` exactly when ``collate(a, b) == 0``.

    Args:
        value: a JSON value (None, bool, int, float, str, list or tuple, or a mapping with
            string keys).

    Returns:
        A tuple that compares with the keys of other JSON values.

    Raises:
        TypeError: ``value`` is not JSON.
    """
    # bool before int: True is an int in Python but a separate type in JSON.
    if value is None:
        return (_NULL,)
    if value is False:
        return (_FALSE,)
    if value is True:
        return (_TRUE,)
    if isinstance(value, int | float):
        return (_NUMBER, value)
    if isinstance(value, str):
        return (_STRING, _string_key(value))
    if isinstance(value, list | tuple):
        return (_ARRAY, tuple(collation_key(item) for item in value))
    if isinstance(value, Mapping):
        return (
            _OBJECT,
            tuple((_string_key(key), collation_key(item)) for key, item in value.items()),
        )
    msg = f"not a JSON value: {value!r}"
    raise TypeError(msg)


def collate(a: Any, b: Any) -> int:
    """Compare two JSON values by CouchDB view collation.

    Args:
        a: a JSON value.
        b: a JSON value.

    Returns:
        -1 when ``a`` sorts before ``b``, 0 when they collate equal, 1 otherwise.
    """
    key_a, key_b = collation_key(a), collation_key(b)
    return int(key_a > key_b) - int(key_a < key_b)


# Erlang term order: number < atom < tuple (an EJSON object) < list < binary (a string).
_RAW_NUMBER, _RAW_ATOM, _RAW_OBJECT, _RAW_LIST, _RAW_STRING = range(5)


def raw_key(value: Any) -> Any:
    """Return a sort key for a JSON value in Erlang term order (CouchDB's "raw" collation).

    Strings compare by code point; ``null``, ``false`` and ``true`` are atoms and sort by name
    (``false < null < true``); objects sort before arrays, arrays before strings.

    Args:
        value: a JSON value.

    Returns:
        A tuple that compares with the raw keys of other JSON values.

    Raises:
        TypeError: ``value`` is not JSON.
    """
    if value is None:
        return (_RAW_ATOM, "null")
    if value is True or value is False:
        return (_RAW_ATOM, "true" if value else "false")
    if isinstance(value, int | float):
        return (_RAW_NUMBER, value)
    if isinstance(value, str):
        # UTF-8 byte order (Erlang binaries) equals code point order.
        return (_RAW_STRING, value)
    if isinstance(value, list | tuple):
        return (_RAW_LIST, tuple(raw_key(item) for item in value))
    if isinstance(value, Mapping):
        return (_RAW_OBJECT, tuple((key, raw_key(item)) for key, item in value.items()))
    msg = f"not a JSON value: {value!r}"
    raise TypeError(msg)


def raw_collate(a: Any, b: Any) -> int:
    """Compare two JSON values in Erlang term order (-1, 0 or 1), as Mango does for ``_id``."""
    key_a, key_b = raw_key(a), raw_key(b)
    return int(key_a > key_b) - int(key_a < key_b)
