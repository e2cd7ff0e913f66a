"""``conveyor registry``: run the registry server, manage its tokens and webhooks, read its audit log."""

from __future__ import annotations

import logging
import os
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from conveyor.cli.output import fail, handle_errors, new_table, print_json, stderr, stdout
from conveyor.cli.settings_options import given_on_command_line, with_settings
from conveyor.exposure import cleartext_warning, refuse_open_exposure
from conveyor.ports import check_port_free
from conveyor.registry.config import open_local
from conveyor.registry.server_settings import RegistryServerSettings
from conveyor.registry.storage_errors import NOTHING_CHANGED, outcome
from conveyor.sizes import human_size
from conveyor.tls import server_tls

if TYPE_CHECKING:
    from conveyor.registry.access import WebhookStore

PROJECT_FILE = Path("conveyor.yaml")

app = typer.Typer(
    rich_markup_mode=None, help="The registry server, its tokens and webhooks, its audit log.", no_args_is_help=True
)
token_app = typer.Typer(
    rich_markup_mode=None, help="Bearer tokens for the registry server (stored hashed).", no_args_is_help=True
)
webhook_app = typer.Typer(
    rich_markup_mode=None, help="Signed webhooks called on new versions and alias moves.", no_args_is_help=True
)
app.add_typer(token_app, name="token")
app.add_typer(webhook_app, name="webhook")

DatabaseOption = Annotated[
    str | None,
    typer.Option(
        "--database",
        envvar="CONVEYOR_DATABASE_URL",
        help="sqlite:///path or postgresql://... [default: $CONVEYOR_HOME/registry.db; "
        "webhook commands: the registry CONVEYOR_REGISTRY names]",
    ),
]
BlobOption = Annotated[
    str | None,
    typer.Option(
        "--blob-store",
        envvar="CONVEYOR_BLOB_STORE",
        help="A folder or s3://bucket/prefix [default: $CONVEYOR_HOME/blobs]",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@app.command("serve")
@with_settings(RegistryServerSettings)
def serve(context: typer.Context, **options: Any) -> None:
    """Serve the registry over HTTP(S) for CI runners and other machines (bearer tokens required).

    \b
    With --tls-cert/--tls-key it speaks HTTPS; clients trust a private CA through CONVEYOR_CA_BUNDLE.
    Every option is also a variable (shown) and a key of conveyor.yaml's registry_server: section
    (the command line wins, then the variable, then conveyor.yaml)."""
    from sqlalchemy.engine import make_url

    from conveyor.errors import StorageError
    from conveyor.http_server import run, server_config
    from conveyor.registry.gc import remove_abandoned_uploads
    from conveyor.registry.schema import normalize_url
    from conveyor.registry.server import create_registry_app

    with handle_errors():
        settings = RegistryServerSettings.load(given_on_command_line(context, options), PROJECT_FILE)
        host, port, log_level = settings.host, settings.port, settings.log_level
        refuse_open_exposure(
            "registry server", host, not settings.insecure_no_auth, "give it tokens (drop --insecure-no-auth)"
        )
        check_port_free(host, port)
        tls = server_tls(settings.tls_cert, settings.tls_key)
        registry = open_local(settings.database, settings.blob_store)
        check_blobs = getattr(registry.blobs, "check", None)
        if check_blobs is not None:
            check_blobs()  # a missing bucket or bad credentials: say so now, not on the first upload
        try:
            abandoned = remove_abandoned_uploads(registry.blobs)  # left by a server killed mid-upload
        except (StorageError, OSError) as error:  # a read-only replica still serves downloads
            abandoned, cleanup_failed = 0, f"warning: abandoned uploads were not removed: {error}"
        else:
            cleanup_failed = ""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app_ = create_registry_app(registry, require_auth=not settings.insecure_no_auth)
    if settings.ui:
        from conveyor.ui.app import with_dashboard

        app_ = with_dashboard(app_, registry, require_login=not settings.insecure_no_auth, sessions=settings)
    shown = make_url(normalize_url(registry.store.url)).render_as_string(hide_password=True)
    scheme = "https" if tls else "http"
    stdout.print(f"registry on {scheme}://{host}:{port}  metadata {shown}  blobs {registry.blobs.url}")
    if abandoned:
        stdout.print(f"removed {abandoned} abandoned temporary upload(s) from {registry.blobs.url}")
    if cleanup_failed:
        stderr.print(cleanup_failed, highlight=False)
    if settings.ui:
        stdout.print(f"dashboard: {scheme}://{host}:{port}/ui/")
    if warning := cleartext_warning("registry server", host, bool(tls)):
        stderr.print(warning, highlight=False)
    run(server_config(app_, host, port, settings, log_level=log_level, **tls))


@app.command("gc")
def gc(
    delete: Annotated[bool, typer.Option("--delete", help="Remove what is listed (without it: a dry run).")] = False,
    grace: Annotated[
        str, typer.Option(help="Spare blobs written or used within this long (and S3 uploads younger than it).")
    ] = "1h",
    database: DatabaseOption = None,
    blob_store: BlobOption = None,
    as_json: JsonOption = False,
) -> None:
    """List temporary uploads no process writes and blobs no version references; --delete removes them.

    \b
    Safe while others register: a blob stored or reused within --grace stays, and blobs are
    removed under the registry's lock, which new versions are made under, so none loses a file."""
    from conveyor.durations import parse_duration
    from conveyor.registry.gc import collect_garbage

    with handle_errors(), outcome("nothing more was removed") if delete else nullcontext():
        registry = open_local(database, blob_store)
        report = collect_garbage(registry.store, registry.blobs, parse_duration(grace), delete=delete)
    if as_json:
        print_json(report.as_json())
        return
    title = "removed" if delete else "would remove (a dry run: --delete removes)"
    table = new_table(f"{title} from {registry.blobs.url}")
    for column in ("kind", "name", "size", "age"):
        table.add_column(column, justify="right" if column in ("size", "age") else "left")
    for item in report.leftovers:
        kind = "temporary upload" if item.kind == "upload" else "unreferenced blob"
        age = f"{item.age / 3600:.1f} h" if item.age >= 3600 else f"{item.age / 60:.0f} min"
        table.add_row(kind, item.name, human_size(item.size), age)
    stdout.print(table)
    verb = "removed" if delete else "would free"
    stdout.print(f"{len(report.leftovers)} leftovers, {verb} {human_size(report.size)}", highlight=False)
    if report.spared:
        spared = sum(item.size for item in report.spared)
        stdout.print(
            f"kept: {len(report.spared)} unreferenced blobs ({human_size(spared)}) younger than --grace {grace}",
            highlight=False,
        )


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="Who or what the token is for, e.g. ci-github.")],
    scope: Annotated[
        str,
        typer.Option(
            help="read (download, list), write (also register, alias, tag, tighten a signing policy) "
            "or admin (also relax a signing policy)."
        ),
    ] = "read",
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a token; it is printed once and stored only as a hash."""
    with handle_errors(), outcome(NOTHING_CHANGED):
        token = open_local(database).tokens.create(name, scope)  # type: ignore[arg-type]
    if as_json:
        print_json({"name": name, "scope": scope, "token": token})
    else:
        stdout.print(token, highlight=False)


@token_app.command("list")
def token_list(database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """List tokens (names and scopes; the tokens themselves are not stored)."""
    with handle_errors():
        tokens = open_local(database).tokens.list()
    if as_json:
        print_json(tokens)
        return

    table = new_table("tokens")
    for column in ("name", "scope", "created", "revoked"):
        table.add_column(column)
    for t in tokens:
        table.add_row(t["name"], t["scope"], t["created_at"], "yes" if t["revoked"] else "")
    stdout.print(table)


@token_app.command("revoke")
def token_revoke(name: Annotated[str, typer.Argument()], database: DatabaseOption = None) -> None:
    """Revoke a token by name."""
    with handle_errors(), outcome(NOTHING_CHANGED):
        open_local(database).tokens.revoke(name)
    stdout.print(f"revoked {name}")


def _webhooks_of(database: str | None) -> WebhookStore:
    """The webhooks of the registry the other commands find (``CONVEYOR_REGISTRY``: a database or a folder),
    or of --database; a registry server's are managed where its database is."""
    from conveyor.registry.config import open_registry
    from conveyor.registry.local import LocalRegistry

    if database:
        return open_local(database).webhooks
    registry = open_registry()
    if not isinstance(registry, LocalRegistry):
        raise fail(
            f"CONVEYOR_REGISTRY is a registry server ({os.environ.get('CONVEYOR_REGISTRY')}): its webhooks are kept "
            "in its database; run this where the server runs, with --database or CONVEYOR_REGISTRY set to it"
        )
    return registry.webhooks


@webhook_app.command("add")
def webhook_add(
    url: Annotated[str, typer.Argument(help="Receiver URL.")],
    secret: Annotated[str, typer.Option(envvar="CONVEYOR_WEBHOOK_SECRET", help="HMAC-SHA256 signing secret.")],
    database: DatabaseOption = None,
) -> None:
    """Call URL on every new version and alias move, signed with X-Conveyor-Signature."""
    with handle_errors():
        _webhooks_of(database).add(url, secret)
    stdout.print(f"webhook {url} added")


@webhook_app.command("list")
def webhook_list(database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """List webhook URLs."""
    with handle_errors():
        urls = [url for url, _ in _webhooks_of(database).all()]
    if as_json:
        print_json(urls)
    else:
        for url in urls:
            stdout.print(url)


@webhook_app.command("remove")
def webhook_remove(url: Annotated[str, typer.Argument()], database: DatabaseOption = None) -> None:
    """Stop calling URL."""
    with handle_errors():
        _webhooks_of(database).remove(url)
    stdout.print(f"webhook {url} removed")


@app.command("audit")
def audit(
    model: Annotated[str | None, typer.Option("--model", help="Only the entries about this model.")] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only entries this recent: a duration (30m, 12h, 7d) or an ISO date or time."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many entries, the newest.")] = 100,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show the audit log: who changed what, when and from where (oldest first).

    \b
    Versions created, archived and deleted; aliases moved and deleted; tags changed; signing
    policies tightened, relaxed or refused; tokens created and revoked; webhooks added and
    removed.  Who: a token's name, or local:<os user> for commands run on the database itself.
    The log is append-only: nothing in Conveyor edits or deletes an entry."""
    from conveyor.durations import parse_since
    from conveyor.registry.audit import one_line

    with handle_errors():
        start = parse_since(since) if since else None
        entries = open_local(database).audit.entries(model=model, since=start, limit=limit)
    if as_json:
        print_json([entry.model_dump(mode="json") for entry in entries])
        return
    table = new_table("audit log")
    for column in ("when (UTC)", "who", "from", "action", "what", "before", "after"):
        table.add_column(column, overflow="fold")  # an 80-column terminal folds a long action, never cuts it
    for e in entries:
        shown = (one_line(e.before), one_line(e.after))
        table.add_row(f"{e.at:%Y-%m-%d %H:%M:%S}", e.who, e.where, e.action, e.target or "", *shown)
    stdout.print(table)
