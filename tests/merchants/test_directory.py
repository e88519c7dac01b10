import time
from uuid import uuid4

import pytest
from sqlalchemy.engine import Engine

from rollon.ledger.accounts import AccountKind
from rollon.ledger.queries import get_account, list_accounts
from rollon.ledger.storage import write_transaction
from rollon.merchants.directory import (
    Category,
    MerchantApplication,
    merchant_row,
    validate_application,
)
from rollon.merchants.errors import MerchantError, Refusal
from rollon.merchants.schema import merchants as merchants_table
from rollon.merchants.service import Merchants
from tests.merchants.conftest import application, assert_books_balance

CITIES = ["Rouen", "Caen", "Le Havre", "Évreux", "Saint-Lô", "Alençon", "Dieppe", "Cherbourg"]
CATEGORIES = list(Category)


def test_onboarding_opens_a_merchant_account(engine: Engine, merchants: Merchants) -> None:
    merchant = merchants.directory.onboard(application(7, iban="fr59 3000 4000 0300 0000 0000 703"))
    assert merchant.siret == application(7).siret
    assert merchant.iban == "FR5930004000030000000000703"
    assert merchant.trade_name == "Boulangerie n°7"
    with engine.connect() as connection:
        account = get_account(connection, merchant.account_id)
    assert account is not None
    assert account.kind is AccountKind.MERCHANT and account.name == "Boulangerie n°7"
    assert account.balance == 0 and account.no_overdraft
    assert merchants.directory.by_account(merchant.account_id) == merchant
    assert merchants.directory.get(merchant.id) == merchant
    assert merchants.directory.by_account(uuid4()) is None
    assert_books_balance(engine, merchants)


def test_onboarding_again_with_the_same_id_is_a_retry(merchants: Merchants) -> None:
    merchant_id = uuid4()
    first = merchants.directory.onboard(application(8), merchant_id)
    assert merchants.directory.onboard(application(8), merchant_id) == first
    with pytest.raises(MerchantError) as caught:
        merchants.directory.onboard(application(8, city="Caen"), merchant_id)
    assert caught.value.code == "merchant_exists" and caught.value.refusal is Refusal.CONFLICT


def test_a_siret_is_onboarded_once(merchants: Merchants) -> None:
    merchants.directory.onboard(application(9))
    with pytest.raises(MerchantError) as caught:
        merchants.directory.onboard(application(9, trade_name="Another shop"))
    assert caught.value.code == "siret_exists"


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"siret": "1234"}, "siret_malformed"),
        ({"siret": "73282932000075"}, "siret_checksum"),
        ({"siret": "12345678900017"}, "siren_checksum"),
        ({"iban": "FR7630006000011234567890188"}, "iban_checksum"),
        ({"iban": "US64SVBKUS6S3300958879"}, "iban_country"),
        ({"iban": "FR76300060000112345678901"}, "iban_length"),
        ({"iban": "not an iban"}, "iban_malformed"),
        ({"category": "casino"}, "unknown_category"),
        ({"postcode": "7600"}, "invalid_postcode"),
        ({"postcode": "76 000"}, "invalid_postcode"),
        ({"legal_name": "   "}, "invalid_name"),
        ({"trade_name": "x" * 201}, "invalid_name"),
        ({"city": ""}, "invalid_city"),
        ({"address": ""}, "invalid_address"),
    ],
)
def test_bad_applications_are_refused_and_open_nothing(
    engine: Engine, merchants: Merchants, changes: dict[str, str], code: str
) -> None:
    with pytest.raises(MerchantError) as caught:
        merchants.directory.onboard(application(**changes))
    assert caught.value.code == code and caught.value.refusal is Refusal.INVALID
    assert merchants.directory.search().merchants == []
    with engine.connect() as connection:
        kinds = {a.kind for a in list_accounts(connection)}
    assert AccountKind.MERCHANT not in kinds


def test_search_by_city_category_and_name(merchants: Merchants) -> None:
    directory = merchants.directory
    for n, trade_name, category, city in [
        (1, "Épicerie du Port", "grocery", "Le Havre"),
        (2, "La Boulangerie Caennaise", "bakery", "Caen"),
        (3, "Boulangerie Saint-Sever", "bakery", "Rouen"),
        (4, "Vélos & Co", "mobility", "Rouen"),
    ]:
        directory.onboard(
            application(
                n, legal_name=f"SAS N{n}", trade_name=trade_name, category=category, city=city
            )
        )

    def names(**query: str) -> list[str]:
        return [m.trade_name for m in directory.search(**query).merchants]

    assert names(city="rouen") == ["Boulangerie Saint-Sever", "Vélos & Co"]
    assert names(city="LE-HAVRE") == ["Épicerie du Port"]
    assert names(category="bakery") == ["Boulangerie Saint-Sever", "La Boulangerie Caennaise"]
    assert names(name="boulang") == ["Boulangerie Saint-Sever", "La Boulangerie Caennaise"]
    assert names(name="EPICERIE") == ["Épicerie du Port"]
    assert names(name="velos") == ["Vélos & Co"]
    assert names(name="50%") == []  # wildcards are text, not patterns
    assert names(city="Rouen", category="mobility") == ["Vélos & Co"]
    assert names(city="Paris") == []


def test_pages_follow_each_other(merchants: Merchants) -> None:
    for n in range(11, 18):
        merchants.directory.onboard(application(n))
    seen, cursor = [], None
    while True:
        page = merchants.directory.search(limit=3, cursor=cursor)
        seen += [m.id for m in page.merchants]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == len(set(seen)) == 7


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"limit": 0}, "invalid_limit"),
        ({"limit": 101}, "invalid_limit"),
        ({"cursor": "not-a-cursor"}, "invalid_cursor"),
        ({"category": "casino"}, "unknown_category"),
        ({"name": "!!!"}, "invalid_search"),
        ({"city": "x" * 101}, "invalid_search"),
    ],
)
def test_bad_searches_are_refused(
    merchants: Merchants, query: dict[str, object], code: str
) -> None:
    with pytest.raises(MerchantError) as caught:
        merchants.directory.search(**query)  # type: ignore[arg-type]
    assert caught.value.code == code


def test_directory_of_2000_merchants_is_fast(engine: Engine, merchants: Merchants) -> None:
    """The regional directory's size: every search answers in a few milliseconds."""
    rows = []
    for n in range(2_000):
        clean = validate_application(
            application(
                10_000 + n,
                trade_name=f"{['Boulangerie', 'Café', 'Librairie', 'Ferme'][n % 4]} {n}",
                city=CITIES[n % len(CITIES)],
                category=CATEGORIES[n % len(CATEGORIES)].value,
            )
        )
        rows.append(merchant_row(uuid4(), uuid4(), clean, time.time_ns()))
    with write_transaction(engine) as connection:
        connection.execute(merchants_table.insert(), rows)

    queries: list[dict[str, str]] = [
        {"city": "Caen"},
        {"category": "bakery"},
        {"name": "librairie 1"},
        {"city": "Saint-Lô", "category": "crafts"},
        {},
    ]
    for query in queries:
        merchants.directory.search(**query)  # warm up
        started = time.perf_counter()
        for _ in range(20):
            page = merchants.directory.search(**query, limit=20)
        per_search_ms = (time.perf_counter() - started) / 20 * 1000
        assert per_search_ms < 25, (query, per_search_ms)
    everything = 0
    cursor = None
    while True:
        page = merchants.directory.search(city="Caen", limit=100, cursor=cursor)
        everything += len(page.merchants)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert everything == 250


def test_validate_application_normalises(merchants: Merchants) -> None:
    clean = validate_application(
        MerchantApplication(
            legal_name="  SARL   Dupont ",
            trade_name="Chez  Dupont",
            siret="732 829 320 00074",
            category="cafe_bar",
            address="1  place du Vieux-Marché",
            postcode=" 76000 ",
            city="Rouen",
            iban="fr76 3000 6000 0112 3456 7890 189",
        )
    )
    assert (clean.legal_name, clean.trade_name, clean.siret, clean.postcode) == (
        "SARL Dupont",
        "Chez Dupont",
        "73282932000074",
        "76000",
    )
