"""The auditors' commands of `rollon`, joined to the command line by `rollon.api.cli`:

- `rollon export --format fec|csv|beancount|journal --out FILE [--from T] [--to T]`:
  streamed to FILE (written beside it, then renamed: never half a file), with a progress bar;
- `rollon audit verify --file EXPORT.jsonl [--public-key KEY.pem]`: the offline check of a
  journal export, no database needed (`verify_export_file`).

Times are ISO 8601 with their offset (2025-06-30T22:00:00Z) or a local day (2025-07-01,
from midnight in Normandy).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click
import sqlalchemy as sa
from tqdm import tqdm

from rollon.api.bootstrap import load_key
from rollon.api.settings import Settings
from rollon.ledger.audit.errors import AuditInputError
from rollon.ledger.audit.exports import ExportFormat, export, parse_format
from rollon.ledger.audit.local_time import day_start_ns, to_ns
from rollon.ledger.audit.offline_verify import describe, load_keys, verify_file
from rollon.ledger.audit.snapshot import Period, seq_range
from rollon.ledger.storage import create_engine

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def parse_moment(text: str | None, option: str) -> int | None:
    """Ledger time of an option's value: ISO 8601 with an offset, or a local day."""
    if text is None:
        return None
    try:
        if len(text) == 10:
            return day_start_ns(date.fromisoformat(text))
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a time such as 2025-06-30T22:00:00Z or a day such as 2025-07-01",
            param_hint=option,
        ) from None
    if moment.tzinfo is None:
        raise click.BadParameter("give the time with its offset (Z or +02:00)", param_hint=option)
    return to_ns(moment)


def add_export_command(group: click.Group, database_options: Decorator) -> None:
    """Add `export` to the command line's main group."""

    @group.command("export")
    @database_options
    @click.option(
        "--format",
        "fmt",
        required=True,
        type=click.Choice([f.value for f in ExportFormat]),
        help="FEC, CSV, Beancount, or the journal export that `audit verify --file` checks",
    )
    @click.option(
        "--out",
        required=True,
        type=click.Path(dir_okay=False, writable=True, path_type=Path, allow_dash=True),
        help="File to write ('-' for standard output)",
    )
    @click.option("--from", "from_text", help="Start of the period, included (time or day)")
    @click.option("--to", "to_text", help="End of the period, excluded (time or day)")
    @click.option(
        "--separator",
        type=click.Choice(["tab", "pipe"]),
        default="tab",
        show_default=True,
        help="FEC column separator",
    )
    def export_command(
        database_url: str,
        key_file: Path | None,
        fmt: str,
        out: Path,
        from_text: str | None,
        to_text: str | None,
        separator: str,
    ) -> None:
        """Export the books, streamed, for any period."""
        settings = Settings.from_env(database_url=database_url, signing_key_file=key_file)
        chosen = parse_format(fmt)
        try:
            period = Period(parse_moment(from_text, "--from"), parse_moment(to_text, "--to"))
        except AuditInputError as error:
            raise click.ClickException(str(error)) from None
        keys = []
        if settings.signing_key_file.exists():
            keys.append(load_key(settings.signing_key_file).public_key())
        elif chosen is ExportFormat.JOURNAL:
            click.echo(
                "warning: no signing key here, the export names no public key: "
                "auditors will need the association's key (GET /v1/keys)",
                err=True,
            )
        engine = create_engine(settings.database_url)
        try:
            with engine.connect() as connection:
                seqs = seq_range(connection, period)
            total = max(0, seqs.last_seq - seqs.first_seq + 1)
            with tqdm(
                total=total, desc=f"export {chosen.value}", unit="entry", disable=None
            ) as bar:

                def progress(done: int) -> None:
                    bar.update(done - bar.n)

                try:
                    chunks = export(
                        engine,
                        chosen,
                        period,
                        public_keys=keys,
                        fec_separator="\t" if separator == "tab" else "|",
                        progress=progress,
                    )
                except AuditInputError as error:
                    raise click.ClickException(str(error)) from None
                _write(chunks, out)
        except sa.exc.DBAPIError as error:
            raise click.ClickException(f"cannot use the database: {error.orig}") from None
        finally:
            engine.dispose()
        if str(out) != "-":
            click.echo(f"{chosen.value} export written: {out}", err=True)


def _write(chunks: Iterable[str], out: Path) -> None:
    """Write to a temporary file beside `out` and rename it at the end: a failed export
    leaves no half file behind."""
    if str(out) == "-":
        for chunk in chunks:
            sys.stdout.write(chunk)
        sys.stdout.flush()
        return
    descriptor, temporary = tempfile.mkstemp(dir=out.resolve().parent, prefix=f".{out.name}.")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            for chunk in chunks:
                handle.write(chunk)
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def verify_export_file(
    export_file: Path, public_key_files: Sequence[Path], settings: Settings
) -> None:
    """`rollon audit verify --file`: prints the report; exits 1 unless everything holds."""
    try:
        if public_key_files:
            keys = load_keys(public_key_files)
        elif settings.signing_key_file.exists():
            keys = [load_key(settings.signing_key_file).public_key()]
        else:
            keys = None
        with tqdm(desc="verify", unit="entry", disable=None) as bar:

            def progress(checked: int) -> None:
                bar.update(checked - bar.n)

            outcome = verify_file(export_file, keys, progress=progress)
    except AuditInputError as error:
        raise click.ClickException(f"{error} ({error.code})") from None
    for line in describe(outcome.report):
        click.echo(line)
    if not outcome.keys_pinned:
        click.echo(
            "warning: checked with the keys inside the file; pass --public-key with the "
            "association's key (GET /v1/keys) to rule out a re-signed copy",
            err=True,
        )
    if not outcome.ok:
        sys.exit(1)
