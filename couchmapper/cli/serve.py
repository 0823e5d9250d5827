"""``couchmapper serve``: a throwaway CouchDB-compatible server on the memory engine."""

from __future__ import annotations

import click

from couchmapper.memory.http.server import CouchServer, Credentials

__all__ = ["serve"]


def _admin(ctx: click.Context, param: click.Parameter, value: str | None) -> Credentials | None:
    if value is None:
        return None
    try:
        return Credentials.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=5984, show_default=True, type=int, help="Port (0: any free).")
@click.option(
    "--admin",
    metavar="USER:PASS",
    callback=_admin,
    help="Server admin; required to bind beyond loopback.",
)
def serve(host: str, port: int, admin: Credentials | None) -> None:
    """Serve the in-memory engine over HTTP, as a CouchDB 3.5 dev server.

    Data lives in memory and is gone when the server stops (Ctrl-C).
    """
    try:
        server = CouchServer((host, port), admin=admin)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    except OSError as exc:
        msg = f"cannot listen on {host}:{port}: {exc.strerror or exc}"
        raise click.ClickException(msg) from None
    who = f"admin {admin.name}" if admin is not None else "no admin: everyone is admin"
    click.echo(f"couchmapper serve: {server.url}/ ({who}); Ctrl-C stops", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped", err=True)
    finally:
        server.server_close()
