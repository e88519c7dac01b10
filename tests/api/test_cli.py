"""The `rollon` command line, in process (click's runner) on each database."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from rollon.api.cli import main
from rollon.api.demo import ACCOUNTS, seed_demo
from rollon.api.token_store import Role, find_token
from rollon.ledger.keys import load_or_create_signing_key, load_signing_key
from rollon.ledger.queries import get_account
from rollon.ledger.schema import transfers
from rollon.ledger.service import Ledger
from rollon.ledger.storage import create_engine

TOKEN_LENGTH = len("rln_") + 43


def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_init_is_safe_twice_and_makes_a_private_key(db_url: str, tmp_path: Path) -> None:
    key = tmp_path / "keys" / "rollon.key"
    code, _, err = _run("init", "--db", db_url, "--key-file", str(key))
    assert code == 0, err
    assert "signing key created" in err
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    first_key = key.read_bytes()
    code, _, err = _run("init", "--db", db_url, "--key-file", str(key))
    assert code == 0, err
    assert "signing key kept" in err
    assert key.read_bytes() == first_key
    assert first_key.decode() not in err


def test_default_database_and_key_sit_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ROLLON_DATABASE_URL", raising=False)
    monkeypatch.delenv("ROLLON_SIGNING_KEY_FILE", raising=False)
    code, _, err = _run("init")
    assert code == 0, err
    assert (tmp_path / "rollon.db").exists()
    assert (tmp_path / "rollon.key").exists()


def test_database_url_from_the_environment(db_url: str, tmp_path: Path) -> None:
    env = {"ROLLON_DATABASE_URL": db_url, "ROLLON_SIGNING_KEY_FILE": str(tmp_path / "k")}
    code, _, err = _run("init", env=env)
    assert code == 0, err
    assert (tmp_path / "k").exists()


def test_token_create_prints_the_token_alone(db_url: str, tmp_path: Path) -> None:
    key = str(tmp_path / "k")
    code, out, err = _run("token", "create", "--role", "admin", "--db", db_url, "--key-file", key)
    assert code == 0, err
    assert out.endswith("\n") and out.count("\n") == 1
    secret = out.strip()
    assert secret.startswith("rln_") and len(secret) == TOKEN_LENGTH
    engine = create_engine(db_url)
    with engine.connect() as connection:
        record = find_token(connection, secret)
    engine.dispose()
    assert record is not None and record.role is Role.ADMIN
    assert record.name == "admin (command line)"


def test_token_for_an_account(db_url: str, tmp_path: Path) -> None:
    key = str(tmp_path / "k")
    assert _run("init", "--db", db_url, "--key-file", key)[0] == 0
    engine = create_engine(db_url)
    ledger = Ledger(engine)
    from rollon.ledger.accounts import AccountKind

    account = ledger.open_account(kind=AccountKind.MERCHANT, name="Boulangerie")
    ledger.close()
    code, out, err = _run(
        "token", "create", "--role", "merchant", "--account", str(account.id),
        "--name", "till 1", "--db", db_url, "--key-file", key,
    )  # fmt: skip
    assert code == 0, err
    with engine.connect() as connection:
        record = find_token(connection, out.strip())
    engine.dispose()
    assert record is not None
    assert (record.account_id, record.name) == (account.id, "till 1")


@pytest.mark.parametrize(
    ("args", "exit_code", "message"),
    [
        (["--role", "member"], 1, "member tokens need an account_id"),
        (["--role", "admin", "--account", "6f1c1f1e-0000-4000-8000-000000000000"], 1, "no account"),
        (["--role", "auditor", "--account", "6f1c1f1e-0000-4000-8000-000000000000"], 1, "act for"),
        (
            ["--role", "member", "--account", "6f1c1f1e-0000-4000-8000-000000000000"],
            1,
            "no account",
        ),
        (["--role", "king"], 2, "'king' is not one of"),
        (["--role", "member", "--account", "alice"], 2, "not a valid UUID"),
        (["--role", "admin", "--name", "   "], 1, "a name has 1 to 200 characters"),
    ],
)
def test_token_create_refuses_bad_input(
    db_url: str, tmp_path: Path, args: list[str], exit_code: int, message: str
) -> None:
    key = str(tmp_path / "k")
    code, out, err = _run("token", "create", *args, "--db", db_url, "--key-file", key)
    assert code == exit_code, err
    assert out == ""
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nonsense", "not a database URL"),
        ("mysql://nobody@127.0.0.1/x", "mysql is not supported"),
        ("postgresql://nobody@127.0.0.1:1/x", "cannot use the database"),
        ("sqlite:////nonexistent-dir/sub/rollon.db", "cannot use the database"),
    ],
)
def test_bad_database_is_a_clean_error(tmp_path: Path, url: str, message: str) -> None:
    key = tmp_path / "k"
    load_or_create_signing_key(key)
    for command in (["init"], ["token", "create", "--role", "admin"], ["audit", "verify"]):
        code, _, err = _run(*command, "--db", url, "--key-file", str(key))
        assert code == 1, (command, err)
        assert message in err, err
        assert "Traceback" not in err


def test_a_key_file_without_a_key_is_a_clean_error(db_url: str, tmp_path: Path) -> None:
    key = tmp_path / "k"
    key.write_text("not a key")
    for command in (["init"], ["audit", "verify"]):
        code, _, err = _run(*command, "--db", db_url, "--key-file", str(key))
        assert code == 1, err
        assert "does not hold an Ed25519 private key" in err


def test_token_revoke(db_url: str, tmp_path: Path) -> None:
    key = str(tmp_path / "k")
    _, out, _ = _run("token", "create", "--role", "auditor", "--db", db_url, "--key-file", key)
    engine = create_engine(db_url)
    with engine.connect() as connection:
        record = find_token(connection, out.strip())
    assert record is not None
    code, _, err = _run("token", "revoke", str(record.id), "--db", db_url, "--key-file", key)
    assert code == 0, err
    with engine.connect() as connection:
        assert find_token(connection, out.strip()) is None
    engine.dispose()
    code, _, err = _run("token", "revoke", str(record.id).replace("-", "")[:-1] + "0")
    assert code != 0


def test_demo_is_idempotent_and_reissues_tokens(db_url: str, tmp_path: Path) -> None:
    key = tmp_path / "k"
    assert _run("init", "--db", db_url, "--key-file", str(key))[0] == 0
    engine = create_engine(db_url)
    balances = []
    secrets = []
    for _ in range(2):
        ledger = Ledger(engine, signing_key=load_signing_key(key))
        credentials = seed_demo(engine, ledger)
        ledger.close()
        secrets.append({c.token for c in credentials})
        with engine.connect() as connection:
            balances.append(
                {a.key: get_account(connection, a.id).balance for a in ACCOUNTS}  # type: ignore[union-attr]
            )
    assert balances[0] == balances[1]
    assert balances[0]["alice"] == 15_000 - 450 - 1_000
    assert balances[0]["chloe"] == 4_250 - 1_800 + 1_000
    assert {c.role for c in credentials} == set(Role)
    with engine.connect() as connection:
        assert all(find_token(connection, s) is None for s in secrets[0])
        assert all(find_token(connection, s) is not None for s in secrets[1])
    engine.dispose()
    code, out, err = _run("audit", "verify", "--db", db_url, "--key-file", str(key))
    assert code == 0, out + err
    assert out.startswith("ok: entries 10, checkpoints 1, signed_through_seq 10")


def test_audit_verify_fails_on_a_tampered_journal(db_url: str, tmp_path: Path) -> None:
    key = tmp_path / "k"
    assert _run("init", "--db", db_url, "--key-file", str(key))[0] == 0
    engine = create_engine(db_url)
    ledger = Ledger(engine, signing_key=load_signing_key(key))
    seed_demo(engine, ledger)
    ledger.close()
    with engine.begin() as connection:
        connection.execute(
            sa.update(transfers).where(transfers.c.seq == 3).values(amount=transfers.c.amount + 1)
        )
    engine.dispose()
    code, out, err = _run("audit", "verify", "--db", db_url, "--key-file", str(key))
    assert code == 1
    assert out.startswith("FAILED:")
    assert "seq 3" in out
    assert "Traceback" not in err


def test_audit_verify_needs_the_key(db_url: str, tmp_path: Path) -> None:
    code, _, err = _run("audit", "verify", "--db", db_url, "--key-file", str(tmp_path / "none"))
    assert code == 1
    assert "no signing key" in err


def test_help_lists_the_commands() -> None:
    code, out, _ = _run("--help")
    assert code == 0
    for command in ("serve", "init", "token", "audit"):
        assert command in out
    assert os.linesep in out
