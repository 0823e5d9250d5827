"""Validators: ``cm.field(validator=...)`` and ``__validate__``, at set, on load and at flush."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import couchmapper as cm
from couchmapper.backends.base import Backend
from couchmapper.model.fields import DocumentField, ScalarDocumentField


def positive(instance: Any, field: Any, value: int) -> None:
    """Refuse numbers below 1."""
    if value < 1:
        msg = f"{field.name} must be at least 1, not {value}"
        raise ValueError(msg)


def short(instance: Any, field: Any, value: str) -> None:
    """Refuse strings longer than 10 characters."""
    if len(value) > 10:
        msg = "at most 10 characters"
        raise ValueError(msg)


def no_spaces(instance: Any, field: Any, value: str) -> None:
    """Refuse strings with a space."""
    if " " in value:
        msg = "no spaces"
        raise ValueError(msg)


def few(value: list[str]) -> None:
    """Refuse lists of more than two items."""
    if len(value) > 2:
        msg = "at most 2 tags"
        raise ValueError(msg)


class Postcode(cm.Embedded):
    """An embedded object with a validated field."""

    code: str = cm.field(default="00000", validator=no_spaces)


class Booking(cm.Document, type_name="val-booking"):
    """A document with field validators and a whole-document check."""

    nights: int = cm.field(default=1, validator=positive)
    guest: str = cm.field(default="x", validator=[short, no_spaces])
    first: int = 0
    last: int = 0
    postcode: Postcode | None = None
    stops: list[Postcode] = cm.field(factory=list)
    note: str = ""
    tags: list[str] = cm.field(factory=list, validator=lambda i, f, v: few(v))

    def __validate__(self) -> Iterator[tuple[str, str]]:
        """``last`` must not come before ``first``."""
        if self.last < self.first:
            yield "last", f"must not be before first ({self.first})"


class Plain(cm.Document, type_name="val-plain"):
    """A document without any validation."""

    n: int = 0


def test_validator_refuses_a_set_and_keeps_the_old_value() -> None:
    """A refused set raises ValidationError naming the document and field, value unchanged."""
    booking = Booking(id="b1", nights=2)
    with pytest.raises(cm.ValidationError) as caught:
        booking.nights = 0
    assert caught.value.doc_id == "b1"
    assert [e.path for e in caught.value.errors] == ["nights"]
    assert "must be at least 1, not 0" in str(caught.value)
    assert booking.nights == 2


def test_validator_list_reports_every_failure_together() -> None:
    """Each validator of a list runs; all their errors come in one ValidationError."""
    booking = Booking(id="b2")
    with pytest.raises(cm.ValidationError) as caught:
        booking.guest = "a very long name"
    assert [e.message for e in caught.value.errors] == ["at most 10 characters", "no spaces"]


def test_validator_runs_in_the_constructor() -> None:
    """The attrs constructor sets through the descriptor, so validators run there too."""
    with pytest.raises(cm.ValidationError, match="nights"):
        Booking(id="b3", nights=-4)


def test_embedded_validator_names_the_full_path() -> None:
    """A validator of an embedded object's field reports the path inside the document."""
    booking = Booking(id="b4", postcode=Postcode())
    assert booking.postcode is not None
    with pytest.raises(cm.ValidationError) as caught:
        booking.postcode.code = "AB 12"
    assert caught.value.doc_id == "b4"
    assert [e.path for e in caught.value.errors] == ["postcode.code"]


def test_fields_without_validators_keep_the_plain_descriptors() -> None:
    """Only fields declared with validator= get the validating descriptor classes."""
    assert type(Plain.__dict__["n"]) in (DocumentField, ScalarDocumentField)
    assert type(Booking.__dict__["note"]) in (DocumentField, ScalarDocumentField)
    assert type(Booking.__dict__["nights"]).__name__ == "ValidatedDocumentField"


def test_validator_must_be_callable() -> None:
    """A validator that is not callable is refused when the field is declared."""
    with pytest.raises(TypeError, match="validator must be a callable"):
        cm.field(default=0, validator=[positive, 3])  # type: ignore[list-item]


def test_invalid_stored_document_fails_to_load_with_every_error(backend: Backend) -> None:
    """Loading runs field validators and __validate__; all errors of the document together."""
    stored = {"_id": "bad", "type": "val-booking", "nights": 0, "first": 5, "last": 1}
    stored["stops"] = [{"code": "A B"}]
    backend.put(stored)
    with cm.Session(backend) as s, pytest.raises(cm.ValidationError) as caught:
        s.get(Booking, "bad")
    assert caught.value.doc_id == "bad"
    assert sorted(e.path for e in caught.value.errors) == ["last", "nights", "stops[0].code"]


def test_query_loads_the_valid_documents_and_reports_the_invalid(backend: Backend) -> None:
    """A query over a bad document still loads the others (QueryLoadError names the bad one)."""
    backend.bulk_docs(
        [
            {"_id": "ok", "type": "val-booking", "nights": 3},
            {"_id": "bad", "type": "val-booking", "nights": -1},
        ]
    )
    with cm.Session(backend) as s, pytest.raises(cm.QueryLoadError) as caught:
        s.get_many(Booking, ["ok", "bad"])
    assert [f.doc_id for f in caught.value.failures] == ["bad"]
    assert [type(r).__name__ if r else None for r in caught.value.results] == ["Booking", None]


def test_flush_writes_valid_documents_and_keeps_the_invalid_pending(backend: Backend) -> None:
    """__validate__ runs before a flush: the valid document is written, the invalid stays."""
    s = cm.Session(backend)
    good, bad = Booking(id="good", first=1, last=2), Booking(id="bad2", first=1, last=2)
    s.add_all([good, bad])
    bad.last = 0  # a whole-document check is not run at each set: only at load and flush
    with pytest.raises(cm.FlushError) as caught:
        s.flush()
    (failure,) = caught.value.failures
    assert failure.doc_id == "bad2"
    assert isinstance(failure.exception, cm.ValidationError)
    assert failure.exception.errors[0].path == "last"
    assert "must not be before first" in failure.reason
    assert backend.get("good")["last"] == 2
    with pytest.raises(cm.DocumentNotFound):
        backend.get("bad2")
    assert s.has_pending()
    bad.last = 5
    s.flush()
    assert backend.get("bad2")["last"] == 5
    s.close()


def test_in_place_container_edit_is_checked_at_flush(backend: Backend) -> None:
    """A list edited in place (no set to validate) is validated when the flush plans it."""
    with cm.Session(backend) as s:
        s.add(Booking(id="trip"))
    s = cm.Session(backend)
    trip = s.get(Booking, "trip")
    assert trip is not None
    trip.tags.extend(["a", "b", "c"])
    with pytest.raises(cm.FlushError) as caught:
        s.flush()
    failure = caught.value.failures[0]
    assert isinstance(failure.exception, cm.ValidationError)
    assert [e.path for e in failure.exception.errors] == ["tags"]
    assert backend.get("trip")["tags"] == []
    s.rollback()
    s.close()


def test_validate_may_raise_for_the_whole_document() -> None:
    """A __validate__ raising ValueError gives one error for the document as a whole."""

    class Pair(cm.Document, type_name="val-pair"):
        """A document whose check raises."""

        a: int = 0

        def __validate__(self) -> None:
            """Refuse odd values."""
            if self.a % 2:
                msg = "a must be even"
                raise ValueError(msg)

    db = cm.connect()
    db.put({"_id": "p", "type": "val-pair", "a": 3})
    with cm.Session(db) as s, pytest.raises(cm.ValidationError) as caught:
        s.get(Pair, "p")
    assert [(e.path, e.message) for e in caught.value.errors] == [("(document)", "a must be even")]
