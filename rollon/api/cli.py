"""The `rollon` command line: serve, init, token create/revoke, audit verify, export (the
auditors' commands live in `rollon.api.audit_cli`).

Every command takes `--db URL` (default: $ROLLON_DATABASE_URL, else the SQLite file
./rollon.db) and `--key-file PATH` (default: $ROLLON_SIGNING_KEY_FILE, else next to the SQLite
file, else ./rollon.key). Results go to stdout (`token create` prints the token alone, for
scripts); messages, progress bars and logs go to stderr. A bad input or an unreachable
database is a one-line error and a non-zero exit, never a traceback.

Other commands join the `main` group (or the `audit` group) with a `@main.command()` and use
`database_options` for the common flags.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ParamSpec, TypeVar
from uuid import UUID

import click
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from tqdm import tqdm

from rollon.api.audit_cli import add_export_command, verify_export_file
from rollon.api.bootstrap import KeyFileError, load_key, prepare_database, prepare_signing_key
from rollon.api.settings import DEFAULT_DATABASE_URL, Settings, SettingsError
from rollon.api.token_store import Role, TokenError, create_token, revoke_token
from rollon.ledger.storage import create_engine

# uvicorn's HTTP parser: httptools (C) rather than its pure-Python default, h11, which cost
# the service a quarter of its payments per second.
HTTP_PARSER = "httptools"
P = ParamSpec("P")
R = TypeVar("R")


def _fail_cleanly(command: Callable[P, R]) -> Callable[P, R]:
    """Turn the errors a user can cause into a message and exit status 1."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (SettingsError, TokenError, KeyFileError) as error:
            raise click.ClickException(str(error)) from None
        except sa.exc.ArgumentError as error:
            raise click.ClickException(f"not a usable database URL: {error}") from None
        except sa.exc.DBAPIError as error:
            raise click.ClickException(f"cannot use the database: {error.orig}") from None
        except OSError as error:
            raise click.ClickException(f"{error.strerror}: {error.filename}") from None

    return wrapper


def database_options(command: Callable[P, R]) -> Callable[P, R]:
    """Add --db and --key-file, and turn user errors into clean exits."""
    command = _fail_cleanly(command)
    command = click.option(
        "--key-file",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="ROLLON_SIGNING_KEY_FILE",
        help="Ed25519 signing key [default: next to the SQLite file, else ./rollon.key]",
    )(command)
    return click.option(
        "--db",
        "database_url",
        envvar="ROLLON_DATABASE_URL",
        default=DEFAULT_DATABASE_URL,
        show_default=True,
        help="Database URL: sqlite:///PATH or postgresql://USER@HOST/DB [env ROLLON_DATABASE_URL]",
    )(command)


@contextmanager
def _engine(settings: Settings) -> Iterator[Engine]:
    engine = create_engine(settings.database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _note(message: str) -> None:
    click.echo(message, err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rollon")
def main() -> None:
    """RolloN ledger service: the digital side of Normandy's complementary currency."""


@main.command()
@database_options
def init(database_url: str, key_file: Path | None) -> None:
    """Create or migrate the schema, the system accounts and the signing key (safe twice)."""
    settings = Settings.from_env(database_url=database_url, signing_key_file=key_file)
    with _engine(settings) as engine:
        prepare_database(engine)
    key = prepare_signing_key(settings.signing_key_file)
    _note(f"database ready: {engine.url.render_as_string(hide_password=True)}")
    _note(f"signing key {'created' if key.created else 'kept'}: {key.path}")


@main.command()
@database_options
@click.option("--host", envvar="ROLLON_HOST", default="127.0.0.1", show_default=True)
@click.option(
    "--port", envvar="ROLLON_PORT", type=click.IntRange(1, 65_535), default=8000, show_default=True
)
@click.option("--demo", is_flag=True, help="Seed demo data and print its tokens first.")
@click.option(
    "--fee-bps",
    envvar="ROLLON_FEE_BPS",
    type=click.IntRange(0, 10_000),
    help="Reconversion fee in basis points (100 = 1 %) [env ROLLON_FEE_BPS; default 300]",
)
@click.option(
    "--bonus-bps",
    envvar="ROLLON_BONUS_BPS",
    type=click.IntRange(0, 10_000),
    help="Bonus on change paid with each issuance, in basis points [env ROLLON_BONUS_BPS]",
)
@click.option(
    "--log-level",
    envvar="ROLLON_LOG_LEVEL",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    default="INFO",
    show_default=True,
)
@click.option("--access-log/--no-access-log", default=True, help="One JSON line per request.")
def serve(
    database_url: str,
    key_file: Path | None,
    host: str,
    port: int,
    demo: bool,
    fee_bps: int | None,
    bonus_bps: int | None,
    log_level: str,
    access_log: bool,
) -> None:
    """Start the HTTP API (prepares the database first, as `init` does)."""
    import uvicorn

    from rollon.api.app import create_app
    from rollon.api.logs import configure_logging

    settings = Settings.from_env(
        database_url=database_url,
        signing_key_file=key_file,
        host=host,
        port=port,
        fee_bps=fee_bps,
        bonus_bps=bonus_bps,
        log_level=log_level.upper(),
        access_log=access_log,
    )
    configure_logging(settings.log_level)
    with _engine(settings) as engine:
        prepare_database(engine)
        prepare_signing_key(settings.signing_key_file)
        if demo:
            _seed_demo(engine, settings)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        http=HTTP_PARSER,
        log_config=None,
        access_log=False,  # the app logs each request itself, as JSON
        server_header=False,
    )


def _seed_demo(engine: Engine, settings: Settings) -> None:
    from rollon.api.demo import demo_steps, seed_demo
    from rollon.ledger.service import Ledger

    ledger = Ledger(engine, signing_key=load_key(settings.signing_key_file))
    try:
        with tqdm(total=demo_steps(), desc="demo data", unit="step", disable=None) as bar:

            def step(what: str) -> None:
                bar.set_postfix_str(what, refresh=False)
                bar.update()

            credentials = seed_demo(engine, ledger, bonus_bps=settings.bonus_bps, step=step)
    finally:
        ledger.close()
    base = f"http://{settings.host}:{settings.port}"
    click.echo("RolloN demo: one token per person (shown once; earlier demo tokens revoked)")
    for c in credentials:
        account = str(c.account_id) if c.account_id else "-"
        click.echo(f"  {c.role.value:<9} {c.name:<48} {account:<36}  {c.token}")
    click.echo(f"API: {base}/v1   manual: {base}/docs")
    click.echo(f'try: curl -H "Authorization: Bearer <token>" {base}/v1/tokens/self', nl=True)
    sys.stdout.flush()


@main.group()
def token() -> None:
    """Create and revoke bearer tokens."""


@token.command("create")
@database_options
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option("--account", "account_id", type=click.UUID, help="For member, merchant, operator")
@click.option("--name", help="Who holds it [default: '<role> (command line)']")
def token_create(
    database_url: str,
    key_file: Path | None,
    role: str,
    account_id: UUID | None,
    name: str | None,
) -> None:
    """Create a token and print it alone on stdout (it is shown this once)."""
    settings = Settings.from_env(database_url=database_url, signing_key_file=key_file)
    with _engine(settings) as engine:
        prepare_database(engine)
        record, secret = create_token(
            engine, Role(role), account_id, name or f"{role} (command line)"
        )
    click.echo(secret)
    _note(f"token {record.id} created for {record.role}")


@token.command("revoke")
@database_options
@click.argument("token_id", type=click.UUID)
def token_revoke(database_url: str, key_file: Path | None, token_id: UUID) -> None:
    """Revoke a token for good (by its id, as `POST /v1/tokens` answered it)."""
    settings = Settings.from_env(database_url=database_url, signing_key_file=key_file)
    with _engine(settings) as engine:
        record = revoke_token(engine, token_id)
    if record is None:
        raise click.ClickException(f"no token {token_id}")
    _note(f"token {token_id} revoked")


@main.group()
def audit() -> None:
    """Check the books."""


@audit.command("verify")
@database_options
@click.option(
    "--file",
    "export_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Check a journal export (rollon export --format journal) instead: no database",
)
@click.option(
    "--public-key",
    "public_key_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="With --file: a trusted public key (PEM, from GET /v1/keys); repeatable",
)
def audit_verify(
    database_url: str,
    key_file: Path | None,
    export_file: Path | None,
    public_key_files: tuple[Path, ...],
) -> None:
    """Recompute the hash chain, check signed checkpoints, replay balances, check the
    invariants. Exit 0 only when everything holds."""
    from rollon.ledger.schema import journal_head
    from rollon.ledger.verify import verify_database

    settings = Settings.from_env(database_url=database_url, signing_key_file=key_file)
    if export_file is not None:
        verify_export_file(export_file, public_key_files, settings)
        return
    if not settings.signing_key_file.exists():
        raise click.ClickException(
            f"no signing key at {settings.signing_key_file}: pass --key-file"
        )
    public_key = load_key(settings.signing_key_file).public_key()
    with _engine(settings) as engine:
        with engine.connect() as connection:
            total = connection.execute(sa.select(journal_head.c.seq)).scalar_one_or_none()
        with tqdm(total=total or 0, desc="verify", unit="entry", disable=None) as bar:

            def progress(checked: int) -> None:
                bar.update(checked - bar.n)

            report = verify_database(engine, [public_key], progress=progress)
    summary: dict[str, Any] = {
        "entries": report.entries_checked,
        "checkpoints": report.checkpoints_checked,
        "signed_through_seq": report.signed_through_seq,
        "last_seq": report.last_seq,
    }
    facts = ", ".join(f"{k} {v}" for k, v in summary.items())
    if report.ok:
        click.echo(f"ok: {facts}")
        return
    click.echo(f"FAILED: {len(report.problems)} problem(s); {facts}")
    for problem in report.problems:
        where = f" (seq {problem.seq})" if problem.seq is not None else ""
        click.echo(f"  {problem.kind}{where}: {problem.message}")
    if report.truncated:
        click.echo("  ... more problems were found than are listed")
    sys.exit(1)


add_export_command(main, database_options)
