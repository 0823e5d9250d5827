"""The mypy plugin types class-level field access as query fields."""

from __future__ import annotations

import textwrap
from pathlib import Path

from mypy import api

SOURCE = """
import couchmapper as cm

class Address(cm.Embedded):
    city: str

class Person(cm.Document):
    name: str
    age: int = 0
    address: Address | None = None

    def greeting(self) -> str:
        return "hi " + self.name

reveal_type(Person.age)
reveal_type(Person.age > 30)
reveal_type(Person.address.city)
reveal_type(Person(name="Ann").age)
reveal_type(Person.greeting)
session = cm.Session()
found = session.find(Person, Person.age > 30, Person.name.in_(["Ann"]), sort=Person.name.desc())
"""


def _check(tmp_path: Path, plugin: bool) -> str:
    config = tmp_path / "mypy.ini"
    plugins = "plugins = couchmapper.mypy\n" if plugin else ""
    config.write_text(f"[mypy]\nstrict = True\n{plugins}")
    module = tmp_path / "models.py"
    module.write_text(textwrap.dedent(SOURCE))
    out, err, _status = api.run(["--config-file", str(config), "--no-incremental", str(module)])
    return out + err


def test_class_level_fields_are_query_fields(tmp_path: Path) -> None:
    """With the plugin, Person.age is a field path and comparisons are expressions."""
    out = _check(tmp_path, plugin=True)
    assert 'Revealed type is "couchmapper.query.NestedFieldPath"' in out
    assert 'Revealed type is "couchmapper.query.Expression"' in out
    assert out.count('"couchmapper.query.NestedFieldPath"') == 2  # Person.age, .address.city
    assert 'Revealed type is "int"' in out  # instance access is still the value
    assert 'Revealed type is "def (self: models.Person) -> str"' in out  # methods untouched
    assert "Success: no issues found" in out


def test_without_the_plugin_fields_look_like_values(tmp_path: Path) -> None:
    """Without it, mypy sees an int and rejects the query: the plugin is what makes it work."""
    out = _check(tmp_path, plugin=False)
    assert "error" in out
