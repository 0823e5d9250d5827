"""``couchmapper migrate`` (the click command), run with click's CliRunner."""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner
from migrate_models import member_v1

import couchmapper as cm
from couchmapper.backends.base import Backend
from couchmapper.cli.migrate import migrate_command


def seed(backend: Backend, count: int) -> None:
    """``count`` version-1 members."""
    results = backend.bulk_docs([member_v1(n) for n in range(count)])
    assert all("error" not in r for r in results), results


def test_cli_migrates_a_memory_database() -> None:
    """MODULE --url memory://db upgrades everything and prints the summary (exit 0)."""
    url = f"memory://cli-{uuid.uuid4().hex}"
    seed(cm.connect(url), 12)
    result = CliRunner().invoke(migrate_command, ["migrate_models", "--url", url, "--batch", "5"])
    assert result.exit_code == 0, result.output
    assert "migrating Member in memory://" in result.output
    assert "upgraded: 12" in result.output
    assert "already current: 0" in result.output
    assert cm.connect(url).get("m0011")["schema_version"] == 3


def test_cli_dry_run_and_failures_give_exit_status_one() -> None:
    """--dry-run writes nothing; a document that cannot be upgraded makes the exit status 1."""
    url = f"memory://cli-{uuid.uuid4().hex}"
    backend = cm.connect(url)
    seed(backend, 3)
    backend.put({"_id": "broken", "type": "mig-member"})
    result = CliRunner().invoke(migrate_command, ["migrate_models", "--url", url, "--dry-run"])
    assert result.exit_code == 1, result.output
    assert "would upgrade: 3" in result.output
    assert "failed: 1" in result.output
    assert "broken:" in result.output
    assert "schema_version" not in backend.get("m0000")


def test_cli_migrates_the_test_server(server_url: str, db_name: str) -> None:
    """The command against the real server: upgraded, and the password never printed."""
    backend = cm.connect(f"{server_url}/{db_name}")
    seed(backend, 7)
    url = f"{server_url}/{db_name}"
    result = CliRunner().invoke(migrate_command, ["migrate_models", "--url", url, "--batch", "3"])
    assert result.exit_code == 0, result.output
    assert "upgraded: 7" in result.output
    password = urlsplit(server_url).password
    if password:
        assert f":{password}@" not in result.output
    assert backend.get("m0006")["email"] == "6@x"
    again = CliRunner().invoke(migrate_command, ["migrate_models", "--url", url])
    assert "upgraded: 0" in again.output
    assert "already current: 7" in again.output


def test_cli_takes_a_file_path(tmp_path: Path) -> None:
    """MODULE may be a path to a .py file defining the versioned classes."""
    source = tmp_path / "models_file.py"
    source.write_text(
        "import couchmapper as cm\n\n"
        "class Counter(cm.Document, type_name='cli-file-counter'):\n"
        "    n: int = 0\n\n"
        "    class Meta:\n"
        "        version = 2\n\n"
        "    @cm.upgrade(1)\n"
        "    def bump(doc):\n"
        "        doc['n'] = doc.get('n', 0) + 100\n"
    )
    url = f"memory://cli-{uuid.uuid4().hex}"
    backend = cm.connect(url)
    backend.put({"_id": "k", "type": "cli-file-counter", "n": 1})
    result = CliRunner().invoke(migrate_command, [str(source), "--url", url])
    assert result.exit_code == 0, result.output
    assert backend.get("k")["n"] == 101


@pytest.mark.parametrize(
    ("module", "message"),
    [
        ("json", "has no document class with `class Meta: version = N`"),
        ("no_such_module_here", "cannot import no_such_module_here"),
        ("missing/file.py", "no such file: missing/file.py"),
    ],
)
def test_cli_refuses_modules_without_versioned_classes(module: str, message: str) -> None:
    """A module that cannot be imported or has no versioned class is a usage error (2)."""
    result = CliRunner().invoke(migrate_command, [module, "--url", "memory://cli-none"])
    assert result.exit_code == 2
    assert message in result.output


def test_cli_needs_a_url_and_a_positive_batch() -> None:
    """--url is required and --batch must be at least 1."""
    assert CliRunner().invoke(migrate_command, ["migrate_models"]).exit_code == 2
    result = CliRunner().invoke(
        migrate_command, ["migrate_models", "--url", "memory://x", "--batch", "0"]
    )
    assert result.exit_code == 2
    assert "--batch" in result.output
