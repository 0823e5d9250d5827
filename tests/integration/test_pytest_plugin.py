"""The pytest plugin: couchmapper.testing's fixtures reach a user's tests through ``pytest11``.

Each test writes a small user project with pytest's ``pytester`` and runs pytest on it in a
subprocess, so the plugin is found the way a user's run finds it: through the entry point of
the installed package, with no conftest.py and no ``-p`` option.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

import couchmapper.testing

pytest_plugins = ["pytester"]


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """Run pytest on the temp project in a subprocess, without the cache plugin."""
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", *args)


def test_entry_point_names_the_module() -> None:
    """The installed package declares couchmapper.testing under the pytest11 group."""
    (found,) = [ep for ep in entry_points(group="pytest11") if ep.value == "couchmapper.testing"]
    assert found.name == "couchmapper.testing"
    assert found.load() is couchmapper.testing


def test_fixtures_need_no_configuration(pytester: pytest.Pytester) -> None:
    """A project with no conftest gets memory_db, memory_session and signal_log."""
    pytester.makepyfile(
        test_user="""
        import couchmapper as cm

        def test_fresh(memory_db, memory_session, signal_log):
            assert memory_db.info()["doc_count"] == 0
            assert memory_session.backend is memory_db
            memory_session.create({"_id": "x"})
            memory_session.flush()
            assert [c.name for c in signal_log][-1] == "after_flush"

        def test_fresh_again(memory_db):
            assert memory_db.info()["doc_count"] == 0
        """
    )
    result = _run(pytester)
    result.assert_outcomes(passed=2)


def test_conftest_naming_the_plugin_does_not_register_it_twice(pytester: pytest.Pytester) -> None:
    """pytest_plugins = ["couchmapper.testing"] in a conftest works beside the entry point."""
    pytester.makeconftest('pytest_plugins = ["couchmapper.testing"]\n')
    pytester.makepyfile(
        test_user="""
        def test_one(memory_session):
            assert memory_session.backend.info()["doc_count"] == 0
        """
    )
    result = _run(pytester)
    result.assert_outcomes(passed=1)


def test_plugin_can_be_disabled_by_its_name(pytester: pytest.Pytester) -> None:
    """``-p no:couchmapper.testing`` (the module's name) turns the fixtures off."""
    pytester.makepyfile(
        test_user="""
        def test_one(memory_db):
            pass
        """
    )
    result = _run(pytester, "-p", "no:couchmapper.testing")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'memory_db' not found*"])


def test_couchdb_url_is_a_fresh_memory_database_per_test(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without COUCHDB_URL, couchdb_url is a fresh memory:// database per test, dropped after."""
    pytester.makepyfile(
        test_user="""
        import pytest
        import couchmapper as cm
        from couchmapper.memory import memory_server

        SEEN = []

        @pytest.mark.parametrize("n", [1, 2])
        def test_write(couchdb_url, n):
            assert couchdb_url.startswith("memory://cm-test-")
            db = cm.connect(couchdb_url, create=False)
            assert db.info()["doc_count"] == 0
            with cm.Session(db) as s:
                s.create({"_id": f"doc-{n}"})
            assert cm.connect(couchdb_url).info()["doc_count"] == 1
            SEEN.append(couchdb_url.removeprefix("memory://"))

        def test_dropped_after():
            assert len(set(SEEN)) == 2
            assert not any(name in memory_server() for name in SEEN)
        """
    )
    monkeypatch.delenv("COUCHDB_URL", raising=False)
    result = _run(pytester)
    result.assert_outcomes(passed=3)


def test_couchdb_url_uses_the_server_when_set(
    pytester: pytest.Pytester, server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With COUCHDB_URL set, couchdb_url is a new database on that server, deleted after."""
    monkeypatch.setenv("COUCHDB_URL", server_url)
    pytester.makepyfile(
        test_user=f"""
        import couchmapper as cm
        from couchmapper.backends.couchdb import CouchDBServer

        SEEN = []

        def test_write(couchdb_url):
            assert couchdb_url.startswith({server_url!r} + "/cm-test-")
            db = cm.connect(couchdb_url, create=False)
            with cm.Session(db) as s:
                s.create({{"_id": "doc"}})
            assert db.get("doc")["_id"] == "doc"
            SEEN.append(couchdb_url.rsplit("/", 1)[1])

        def test_dropped_after():
            server = CouchDBServer({server_url!r})
            try:
                assert SEEN and SEEN[0] not in server.list_databases()
            finally:
                server.close()
        """
    )
    result = _run(pytester)
    result.assert_outcomes(passed=2)
