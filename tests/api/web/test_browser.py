"""The user flows in headless Chromium at a phone's size, against a real uvicorn server:
a merchant's till and a member paying it, a refund, an issuance, an auditor's export; and
every page rendered without sideways scrolling. Each page is photographed into
/tmp/rollon-shots/ (ROLLON_SHOTS_DIR) for people to look at."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from rollon.api.token_store import Role
from rollon.ledger.accounts import AccountKind
from tests.api.web.conftest import PHONE, LiveServer, shot
from tests.merchants.conftest import FUND_IBAN

pytestmark = pytest.mark.browser

WAIT_MS = 10_000


@pytest.fixture
def phone(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    """A new browser context the size of a phone; pages made with `open_page()`."""
    context = browser.new_context(viewport=PHONE, device_scale_factor=1, locale="fr-FR")
    context.set_default_timeout(WAIT_MS)
    yield context
    context.close()


def signed_in(context: Any, server: LiveServer, token: str, *, photo: str = "") -> Any:
    """A page of `context` signed in through the sign-in form."""
    page = context.new_page()
    page.goto(f"{server.base_url}/sign-in")
    if photo:
        shot(page, photo)
    page.fill("#f-token", token)
    page.click("button[type=submit] >> text=Se connecter")
    page.wait_for_load_state()
    return page


def no_sideways_scroll(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{page.url} is {width}px wide on a {PHONE['width']}px phone"


def test_a_member_pays_the_till_and_it_turns_to_paid_by_itself(
    browser: Any, phone: Any, live_server: LiveServer
) -> None:
    shop = live_server.merchant("Boulangerie du Vieux-Marché")
    alice = live_server.account(AccountKind.MEMBER, "Alice Martin", balance=5_000)

    till = signed_in(
        phone, live_server, live_server.token(Role.MERCHANT, shop.account_id), photo="01-sign-in"
    )
    assert till.url.endswith("/till")
    shot(till, "02-till")
    till.fill("#f-amount", "12,50")
    till.fill("#f-reference", "Table 4")
    till.click("text=Afficher le code QR")
    till.wait_for_selector("img.qr")
    assert "12,50" in till.inner_text("[data-amount]")
    assert till.inner_text("[data-till-status]") == "En attente du paiement…"
    till.evaluate("window.__sameDocument = 42")  # gone if the page reloads
    shot(till, "03-till-qr")
    payload = till.input_value("[data-payload]")
    assert payload.startswith("000201")

    member_context = browser.new_context(viewport=PHONE, locale="fr-FR")
    member_context.set_default_timeout(WAIT_MS)
    try:
        wallet = signed_in(member_context, live_server, live_server.token(Role.MEMBER, alice))
        assert wallet.url.endswith("/wallet")
        shot(wallet, "04-wallet")
        wallet.click(".menu >> text=Payer")
        wallet.wait_for_selector("#f-payload")
        shot(wallet, "05-pay")
        wallet.fill("#f-payload", payload)
        wallet.click("text=Vérifier le paiement")
        wallet.wait_for_selector("[data-merchant-name]")
        # The name comes from the directory, for the account the payload names.
        assert wallet.inner_text("[data-merchant-name]") == "Boulangerie du Vieux-Marché"
        assert "12,50" in wallet.inner_text("[data-pay-amount]")
        shot(wallet, "06-pay-confirm")
        wallet.click("[data-pay]")
        wallet.wait_for_selector(".notice")
        assert "Paiement de 12,50" in wallet.inner_text(".notice")
        assert "37,50" in wallet.inner_text("[data-balance]")
        shot(wallet, "07-wallet-paid")
    finally:
        member_context.close()

    till.wait_for_selector("[data-till-status].paid", timeout=WAIT_MS)
    assert till.inner_text("[data-till-status]") == "Payé"
    assert till.evaluate("window.__sameDocument") == 42, "the till reloaded"
    assert not till.is_visible("img.qr")
    shot(till, "08-till-paid")
    assert live_server.balance(alice) == 3_750
    assert live_server.balance(shop.account_id) == 1_250


# A camera and a QR reader for browsers without them (Chromium on Linux has no
# BarcodeDetector): the camera films a blank canvas, the reader "sees" the payload.
FAKE_SCANNER = """
window.BarcodeDetector = class {
  constructor(options) { this.formats = options.formats; }
  async detect(source) { return [{ rawValue: window.__payloadInView }]; }
};
navigator.mediaDevices.getUserMedia = async () => {
  const canvas = document.createElement("canvas");
  canvas.getContext("2d").fillRect(0, 0, 10, 10);
  return canvas.captureStream(5);
};
"""


def test_a_member_scans_the_code_with_the_camera(phone: Any, live_server: LiveServer) -> None:
    shop = live_server.merchant("Fromagerie Rouennaise")
    alice = live_server.account(AccountKind.MEMBER, "Alice Martin", balance=5_000)
    request = live_server.merchants.requests.create(shop.account_id, 870)
    phone.add_init_script(FAKE_SCANNER)
    page = signed_in(phone, live_server, live_server.token(Role.MEMBER, alice))
    page.goto(f"{live_server.base_url}/wallet/pay")
    page.evaluate("payload => { window.__payloadInView = payload; }", request.payload)
    assert page.is_hidden("[data-scan-unsupported]")
    page.click("text=Scanner le code QR")
    page.wait_for_selector("[data-merchant-name]")  # scanned, then checked by itself
    assert page.inner_text("[data-merchant-name]") == "Fromagerie Rouennaise"
    assert "8,70" in page.inner_text("[data-pay-amount]")


def test_a_merchant_refunds_part_of_a_payment(phone: Any, live_server: LiveServer) -> None:
    shop = live_server.merchant("Épicerie Saint-Maclou")
    alice = live_server.account(AccountKind.MEMBER, "Alice Martin", balance=5_000)
    requests = live_server.merchants.requests
    request = requests.create(shop.account_id, 2_000, reference="Panier")
    requests.pay(request.payload, alice)

    page = signed_in(phone, live_server, live_server.token(Role.MERCHANT, shop.account_id))
    page.click(".menu >> text=Encaissements")
    page.wait_for_selector("[data-day-total]")
    assert "20,00" in page.inner_text("[data-day-total]")
    shot(page, "09-till-payments")
    page.click(f"[data-payment='{request.id}'] >> text=Rembourser")
    page.wait_for_selector("#f-amount")
    shot(page, "10-till-refund")
    page.fill("#f-amount", "5")
    page.click("button >> text=Rembourser")
    page.wait_for_selector(".notice")
    assert page.inner_text(".notice") == "5,00 RolloN remboursés."
    assert "remboursé en partie" in page.inner_text(f"[data-payment='{request.id}']")
    shot(page, "11-till-refunded")
    assert live_server.balance(alice) == 3_500
    assert live_server.balance(shop.account_id) == 1_500


def test_an_admin_opens_an_account_and_issues_rollon(phone: Any, live_server: LiveServer) -> None:
    page = signed_in(phone, live_server, live_server.token(Role.ADMIN))
    assert page.url.endswith("/admin")
    shot(page, "12-admin")
    page.select_option("#f-kind", "member")
    page.fill("form[action='/admin/accounts'] #f-name", "Chloé Lefèvre")
    page.click("form[action='/admin/accounts'] button")
    page.wait_for_selector("[data-created]")
    account_id = page.inner_text("[data-account-id]")
    assert page.inner_text("[data-token]").startswith("rln_")
    shot(page, "13-admin-opened")

    page.click(".menu >> text=Émettre")
    page.wait_for_selector("#f-account_id")
    page.fill("#f-account_id", account_id)
    page.fill("#f-amount", "20")
    page.fill("#f-euro_reference", "comptoir-rouen-000123")
    page.click("text=Émettre >> nth=-1")
    page.wait_for_selector(".notice")
    assert "20,00" in page.inner_text(".notice") and "Chloé Lefèvre" in page.inner_text(".notice")
    shot(page, "14-issued")
    assert live_server.balance(UUID(account_id)) == 2_000


def test_an_auditor_downloads_an_export(phone: Any, live_server: LiveServer) -> None:
    alice = live_server.account(AccountKind.MEMBER, "Alice Martin", balance=4_200)
    page = signed_in(phone, live_server, live_server.token(Role.AUDITOR))
    assert page.url.endswith("/audit")
    assert page.get_attribute("[data-coverage]", "data-coverage") == "ok"
    shot(page, "15-audit")
    page.select_option("#f-format", "csv")
    with page.expect_download() as download_info:
        page.click("form[action='/audit/export'] button")
    download = download_info.value
    assert download.suggested_filename.startswith("rollon-csv-")
    text = Path(download.path()).read_text(encoding="utf-8")
    assert text.splitlines()[0].startswith("seq,")
    assert str(alice) in text and "4200" in text

    page.click("text=Vérifier maintenant")
    page.wait_for_selector("[data-verify]")
    assert page.get_attribute("[data-verify]", "data-verify") == "ok"
    shot(page, "16-audit-verify")
    page.goto(f"{live_server.base_url}/audit/report")
    page.wait_for_selector("img[data-chart]")
    page.wait_for_function("document.querySelector('img[data-chart]').naturalWidth > 0")
    shot(page, "17-audit-report")


def test_every_page_fits_a_phone(
    phone: Any, live_server: LiveServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The pages the flows above do not reach, in both languages, photographed."""
    monkeypatch.setenv("ROLLON_FUND_IBAN", FUND_IBAN)
    shop = live_server.merchant("Café des Arts", city="Caen")
    live_server.merchant("Librairie La Réserve", city="Caen")
    alice = live_server.account(AccountKind.MEMBER, "Alice Martin", balance=2_000)
    bob = live_server.account(AccountKind.MEMBER, "Bob Durand")
    base = live_server.base_url

    page = phone.new_page()
    for path, name in [
        ("/", "20-home"),
        ("/directory?city=Caen", "21-directory"),
        ("/directory?lang=en", "22-directory-en"),
    ]:
        page.goto(base + path)
        no_sideways_scroll(page)
        shot(page, name)
    page.goto(base + "/directory?lang=fr")

    member = signed_in(phone, live_server, live_server.token(Role.MEMBER, alice))
    member.goto(base + "/wallet/send")
    member.fill("#f-to", str(bob))
    member.fill("#f-amount", "2,5")
    member.click("text=Vérifier")
    member.wait_for_selector("[data-recipient]")
    assert member.inner_text("[data-recipient]") == "Bob Durand"
    no_sideways_scroll(member)
    shot(member, "24-send-confirm")
    member.click("button >> text=Envoyer")
    member.wait_for_selector(".notice")
    assert "2,50" in member.inner_text(".notice")
    shot(member, "25-wallet-sent")
    member.goto(base + "/admin")
    assert member.inner_text("h1") == "Une erreur est survenue"
    shot(member, "26-forbidden")
    member.click("text=Se déconnecter")
    member.wait_for_url("**/sign-in?out=1")

    till = signed_in(phone, live_server, live_server.token(Role.MERCHANT, shop.account_id))
    answer = till.goto(f"{base}/till/requests/{uuid4()}")
    assert answer.status == 404
    assert "Cette demande de paiement est inconnue." in till.inner_text(".alert")
    shot(till, "23-not-found")
    live_server.merchants.requests.pay(
        live_server.merchants.requests.create(shop.account_id, 900).payload, alice
    )
    for path, name in [("/till/reconversion", "27-reconversion"), ("/till?lang=en", "28-till-en")]:
        till.goto(base + path)
        no_sideways_scroll(till)
        shot(till, name)
    till.goto(base + "/till/reconversion?lang=fr")
    till.fill("#f-amount", "5")
    till.click("text=Demander la reconversion")
    till.wait_for_selector(".notice")
    assert "commission" in till.inner_text(".notice")
    shot(till, "29-reconverted")
    till.click("text=Se déconnecter")

    admin = signed_in(phone, live_server, live_server.token(Role.ADMIN))
    for path, name in [
        ("/admin/merchants/new", "30-onboard"),
        ("/admin/settlements", "31-settlements"),
    ]:
        admin.goto(base + path)
        no_sideways_scroll(admin)
        shot(admin, name)
    admin.goto(base + "/admin/settlements")
    admin.click("text=Préparer le fichier de virements SEPA")
    admin.wait_for_selector("[data-settlement-file]")
    no_sideways_scroll(admin)
    shot(admin, "33-settlement-ready")
    statement = tmp_path / "releve.csv"
    statement.write_text("booking_date;amount;reference\n2020-01-02;12,00;unknown transfer\n")
    admin.goto(base + "/audit/statements")
    admin.set_input_files("#f-file", str(statement))
    admin.click("text=Importer et rapprocher")
    admin.wait_for_selector("[data-reconciled]")
    no_sideways_scroll(admin)
    shot(admin, "34-statement")
    admin.goto(base + "/admin/merchants/new")
    admin.fill("#f-trade_name", "Ferme du Bocage")
    admin.fill("#f-legal_name", "EARL du Bocage")
    admin.fill("#f-siret", "123")
    admin.fill("#f-address", "1 chemin creux")
    admin.fill("#f-postcode", "14000")
    admin.fill("#f-city", "Caen")
    admin.fill("#f-iban", "FR00 1234")
    admin.click("form[action='/admin/merchants'] button")
    admin.wait_for_selector(".field-error")
    no_sideways_scroll(admin)
    shot(admin, "32-onboard-errors")
