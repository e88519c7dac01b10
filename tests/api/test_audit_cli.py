"""`rollon export` and `rollon audit verify --file`, in process (click's runner), on each
database: files written whole, periods, the offline check with and without the pinned key,
and bad input as a message with a non-zero exit."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from rollon.api.cli import main
from rollon.api.demo import seed_demo
from rollon.ledger.keys import load_signing_key, public_key_pem
from rollon.ledger.service import Ledger
from rollon.ledger.storage import create_engine


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def demo(db_url: str, tmp_path: Path) -> tuple[str, Path]:
    """A database with the demo's books, and its key file."""
    key = tmp_path / "rollon.key"
    assert _run("init", "--db", db_url, "--key-file", str(key))[0] == 0
    engine = create_engine(db_url)
    ledger = Ledger(engine, signing_key=load_signing_key(key))
    seed_demo(engine, ledger)
    ledger.close()
    engine.dispose()
    return db_url, key


def test_export_every_format(demo: tuple[str, Path], tmp_path: Path) -> None:
    db_url, key = demo
    for fmt, first in (
        ("fec", "JournalCode\t"),
        ("csv", "seq,"),
        ("beancount", "option"),
        ("journal", '{"record":"header"'),
    ):
        out = tmp_path / f"books.{fmt}"
        code, _, err = _run(
            "export", "--format", fmt, "--out", str(out), "--db", db_url, "--key-file", str(key)
        )
        assert code == 0, err
        assert out.read_text(encoding="utf-8").startswith(first)
        assert "written" in err
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".books")]  # no leftovers
    rows = list(csv.DictReader((tmp_path / "books.csv").open(encoding="utf-8")))
    assert [int(r["seq"]) for r in rows] == list(range(1, len(rows) + 1))


def test_export_of_a_period_and_to_stdout(demo: tuple[str, Path]) -> None:
    db_url, key = demo
    code, out, _ = _run(
        "export",
        "--format",
        "csv",
        "--out",
        "-",
        "--from",
        "2000-01-01",
        "--to",
        "2000-01-02T00:00:00Z",
        "--db",
        db_url,
        "--key-file",
        str(key),
    )
    assert code == 0
    assert out.splitlines() == [out.splitlines()[0]]  # the header alone: nothing then


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "xlsx"], "Invalid value for '--format'"),
        (["--format", "csv", "--from", "yesterday"], "not a time"),
        (["--format", "csv", "--from", "2025-01-01T00:00:00"], "offset"),
        (["--format", "csv", "--from", "2025-02-01", "--to", "2025-01-01"], "start before"),
        (["--format", "journal", "--from", "2025-01-01"], "whole journal"),
    ],
)
def test_export_refuses_bad_input(
    demo: tuple[str, Path], tmp_path: Path, args: list[str], message: str
) -> None:
    db_url, key = demo
    out = tmp_path / "refused.txt"
    code, _, err = _run("export", *args, "--out", str(out), "--db", db_url, "--key-file", str(key))
    assert code != 0
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_audit_verify_file(demo: tuple[str, Path], tmp_path: Path) -> None:
    db_url, key = demo
    journal = tmp_path / "journal.jsonl"
    assert (
        _run(
            "export",
            "--format",
            "journal",
            "--out",
            str(journal),
            "--db",
            db_url,
            "--key-file",
            str(key),
        )[0]
        == 0
    )
    pem = tmp_path / "association.pem"
    pem.write_text(public_key_pem(load_signing_key(key).public_key()))
    elsewhere = tmp_path / "no-such.key"  # an auditor's machine: no key file, no database

    code, out, err = _run(
        "audit",
        "verify",
        "--file",
        str(journal),
        "--public-key",
        str(pem),
        "--key-file",
        str(elsewhere),
        "--db",
        "sqlite:///" + str(tmp_path / "absent.db"),
    )
    assert (code, out.splitlines()[0]) == (0, "OK: the journal and every invariant hold"), err
    assert not (tmp_path / "absent.db").exists()

    code, _, err = _run("audit", "verify", "--file", str(journal), "--key-file", str(elsewhere))
    assert code == 0 and "--public-key" in err  # warned: only the file's own keys

    lines = journal.read_text(encoding="utf-8").splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if '"record":"entry"' in line)
    record = json.loads(lines[index])
    record["amount"] += 1
    lines[index] = json.dumps(record) + "\n"
    journal.write_text("".join(lines), encoding="utf-8")
    code, out, _ = _run("audit", "verify", "--file", str(journal), "--public-key", str(pem))
    assert code == 1 and out.startswith("FAILED") and "entry_edited" in out

    journal.write_text("".join(lines[:-3]), encoding="utf-8")
    code, _, err = _run("audit", "verify", "--file", str(journal), "--public-key", str(pem))
    assert code == 1 and "journal_file_incomplete" in err and "Traceback" not in err
    code, _, err = _run("audit", "verify", "--file", str(journal), "--public-key", str(journal))
    assert code == 1 and "public_key_unreadable" in err
