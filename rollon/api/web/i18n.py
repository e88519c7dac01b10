"""The pages' words, in French (the default) and English: a plain dict catalogue.

The language comes from `?lang=fr|en` (which also sets the `rollon_lang` cookie), else from
that cookie, else French. Every key has both languages; a test checks that every key the
templates and modules use is in the catalogue.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

LANG_COOKIE: Final = "rollon_lang"
LANG_COOKIE_MAX_AGE_S: Final = 365 * 24 * 3600


class Lang(StrEnum):
    FR = "fr"
    EN = "en"


DEFAULT_LANG: Final = Lang.FR


def parse_lang(text: str | None) -> Lang | None:
    """The language named by a query parameter or cookie, None if it names none we have."""
    if text is None:
        return None
    try:
        return Lang(text.strip().lower())
    except ValueError:
        return None


# key -> (French, English). Values may hold {placeholders} filled by `Translator.__call__`.
CATALOGUE: Final[dict[str, tuple[str, str]]] = {
    # -- frame ---------------------------------------------------------------------------
    "app.name": ("RolloN", "RolloN"),
    "app.tagline": (
        "La monnaie locale de Normandie",
        "Normandy's local currency",
    ),
    "nav.directory": ("Annuaire", "Directory"),
    "nav.wallet": ("Mon compte", "My account"),
    "nav.pay": ("Payer", "Pay"),
    "nav.send": ("Envoyer", "Send"),
    "nav.till": ("Caisse", "Till"),
    "nav.payments": ("Encaissements", "Payments"),
    "nav.reconversion": ("Reconversion", "Reconversion"),
    "nav.admin": ("Administration", "Administration"),
    "nav.issue": ("Émettre", "Issue"),
    "nav.audit": ("Contrôle", "Audit"),
    "nav.report": ("Activité", "Activity"),
    "nav.statements": ("Relevés", "Statements"),
    "nav.merchants": ("Commerçants", "Merchants"),
    "nav.settlements": ("Virements", "Payouts"),
    "nav.sign_in": ("Se connecter", "Sign in"),
    "nav.sign_out": ("Se déconnecter", "Sign out"),
    "nav.language": ("Langue", "Language"),
    "nav.menu": ("Menu", "Menu"),
    "signed_in_as": ("Connecté : {name}", "Signed in: {name}"),
    "role.admin": ("administration", "administration"),
    "role.operator": ("comptoir de change", "exchange point"),
    "role.merchant": ("commerçant", "merchant"),
    "role.member": ("adhérent", "member"),
    "role.auditor": ("contrôleur", "auditor"),
    "kind.member": ("adhérent", "member"),
    "kind.merchant": ("commerçant", "merchant"),
    "kind.exchange_point": ("comptoir de change", "exchange point"),
    "kind.system": ("système", "system"),
    "common.amount": ("Montant", "Amount"),
    "common.amount_hint": ("par exemple 12,50", "for example 12,50"),
    "common.reference": ("Référence", "Reference"),
    "common.account_id": ("Numéro de compte", "Account number"),
    "common.balance": ("Solde", "Balance"),
    "common.memo": ("Message", "Message"),
    "common.optional": ("facultatif", "optional"),
    "common.cancel": ("Annuler", "Cancel"),
    "common.back": ("Retour", "Back"),
    "common.search": ("Rechercher", "Search"),
    "common.next_page": ("Page suivante", "Next page"),
    "common.none_yet": ("Rien pour l'instant.", "Nothing yet."),
    "common.download": ("Télécharger", "Download"),
    "common.show": ("Afficher", "Show"),
    "common.copy_hint": (
        "Notez-le maintenant : il ne sera plus jamais affiché.",
        "Write it down now: it will never be shown again.",
    ),
    # -- sign-in -------------------------------------------------------------------------
    "sign_in.title": ("Connexion", "Sign in"),
    "sign_in.intro": (
        "Collez le jeton que l'association vous a remis (il commence par « rln_ »).",
        "Paste the token the association gave you (it starts with “rln_”).",
    ),
    "sign_in.token": ("Jeton", "Token"),
    "sign_in.submit": ("Se connecter", "Sign in"),
    "sign_in.signed_out": ("Vous êtes déconnecté.", "You are signed out."),
    "sign_in.expired": (
        "Votre session a pris fin : reconnectez-vous.",
        "Your session has ended: please sign in again.",
    ),
    # -- home ----------------------------------------------------------------------------
    "home.title": ("Bienvenue", "Welcome"),
    "home.intro": (
        "Un RolloN vaut un euro, garanti par un fonds en euros. Payez chez les commerçants "
        "normands avec votre téléphone.",
        "One RolloN is worth one euro, backed by a fund in euros. Pay Normandy's merchants "
        "with your phone.",
    ),
    "home.find": ("Trouver un commerçant", "Find a merchant"),
    # -- wallet --------------------------------------------------------------------------
    "wallet.title": ("Mon compte", "My account"),
    "wallet.available": ("Disponible", "Available"),
    "wallet.history": ("Historique", "History"),
    "wallet.pending": ("en attente", "pending"),
    "wallet.code.issuance": ("Change en RolloN", "Exchange to RolloN"),
    "wallet.code.transfer": ("Virement", "Transfer"),
    "wallet.code.payment": ("Paiement", "Payment"),
    "wallet.code.refund": ("Remboursement", "Refund"),
    "wallet.code.reconversion": ("Reconversion en euros", "Reconversion to euros"),
    "wallet.code.payout": ("Versement", "Payout"),
    "wallet.code.fee": ("Commission", "Fee"),
    "wallet.code.correction": ("Correction", "Correction"),
    "wallet.code.expiry": ("Expiration", "Expiry"),
    "wallet.your_account": ("Votre numéro de compte", "Your account number"),
    "send.title": ("Envoyer des RolloN", "Send RolloN"),
    "send.intro": (
        "À un autre adhérent, avec son numéro de compte.",
        "To another member, with their account number.",
    ),
    "send.to": ("Numéro de compte du destinataire", "Recipient's account number"),
    "send.check": ("Vérifier", "Check"),
    "send.confirm_title": ("Confirmer l'envoi", "Confirm the transfer"),
    "send.confirm_to": ("Destinataire", "Recipient"),
    "send.submit": ("Envoyer", "Send"),
    "send.done": ("{amount} envoyés à {name}.", "{amount} sent to {name}."),
    "pay.title": ("Payer un commerçant", "Pay a merchant"),
    "pay.scan": ("Scanner le code QR", "Scan the QR code"),
    "pay.scan_stop": ("Arrêter la caméra", "Stop the camera"),
    "pay.no_camera": (
        "Ce navigateur ne sait pas lire un code QR : collez le contenu du code ci-dessous.",
        "This browser cannot read QR codes: paste the code's content below.",
    ),
    "pay.payload": ("Contenu du code QR", "QR code content"),
    "pay.check": ("Vérifier le paiement", "Check the payment"),
    "pay.confirm_title": ("Confirmer le paiement", "Confirm the payment"),
    "pay.confirm_intro": (
        "Vérifiez le nom du commerçant : c'est celui que l'annuaire RolloN connaît pour ce compte.",
        "Check the merchant's name: it is the one the RolloN directory holds for this account.",
    ),
    "pay.merchant": ("Commerçant", "Merchant"),
    "pay.amount_to_type": (
        "Montant à payer (ce code ne fixe pas de montant)",
        "Amount to pay (this code sets no amount)",
    ),
    "pay.submit": ("Payer {amount}", "Pay {amount}"),
    "pay.submit_static": ("Payer", "Pay"),
    "pay.done": ("Paiement de {amount} à {name} effectué.", "Paid {amount} to {name}."),
    # -- till ----------------------------------------------------------------------------
    "till.title": ("Caisse", "Till"),
    "till.new": ("Nouvel encaissement", "New payment"),
    "till.create": ("Afficher le code QR", "Show the QR code"),
    "till.reference_hint": ("n° de ticket, table…", "receipt number, table…"),
    "till.request_title": ("À payer", "To pay"),
    "till.scan_me": (
        "Le client scanne ce code avec son téléphone.",
        "The customer scans this code with their phone.",
    ),
    "till.waiting": ("En attente du paiement…", "Waiting for the payment…"),
    "till.paid": ("Payé", "Paid"),
    "till.expires": ("Valable jusqu'à {time}", "Valid until {time}"),
    "till.payload": ("Contenu du code (pour le coller)", "Code content (to paste it)"),
    "till.cancel_request": ("Annuler la demande", "Cancel the request"),
    "till.another": ("Nouvel encaissement", "New payment"),
    "till.today": ("Encaissements du jour", "Today's payments"),
    "till.today_total": ("Total du jour", "Today's total"),
    "till.refund": ("Rembourser", "Refund"),
    "till.refund_title": ("Rembourser un paiement", "Refund a payment"),
    "till.refund_intro": (
        "Payé {paid}, déjà remboursé {refunded}. Vous pouvez rembourser jusqu'à {left}.",
        "Paid {paid}, already refunded {refunded}. You may refund up to {left}.",
    ),
    "till.refund_submit": ("Rembourser", "Refund"),
    "till.refund_done": ("{amount} remboursés.", "{amount} refunded."),
    "till.balance": ("Solde du compte", "Account balance"),
    "till.refunded_total": ("Remboursé", "Refunded"),
    "status.open": ("en attente", "waiting"),
    "status.paid": ("payé", "paid"),
    "status.partially_refunded": ("remboursé en partie", "partly refunded"),
    "status.refunded": ("remboursé", "refunded"),
    "status.expired": ("expiré", "expired"),
    "status.cancelled": ("annulé", "cancelled"),
    "reconversion.title": ("Reconversion en euros", "Reconversion to euros"),
    "reconversion.intro": (
        "Convertissez vos RolloN en euros, virés sur votre IBAN. Commission : {rate}.",
        "Convert your RolloN to euros, paid to your IBAN. Fee: {rate}.",
    ),
    "reconversion.submit": ("Demander la reconversion", "Ask for reconversion"),
    "reconversion.done": (
        "Reconversion de {amount} : commission {fee}, {net} vous seront virés.",
        "Reconversion of {amount}: fee {fee}, {net} will be paid to you.",
    ),
    "reconversion.history": ("Reconversions", "Reconversions"),
    "reconversion.fee": ("Commission", "Fee"),
    "reconversion.status.pending": ("en cours", "in progress"),
    "reconversion.status.due": ("à virer", "to be paid"),
    "reconversion.status.failed": ("refusée", "refused"),
    "reconversion.status.settling": ("virement en cours", "being paid"),
    "reconversion.status.paid": ("virée", "paid"),
    "settlement.status.prepared": ("à envoyer à la banque", "to send to the bank"),
    "settlement.status.paid": ("viré", "paid"),
    "settlement.status.cancelled": ("annulé", "cancelled"),
    # -- admin ---------------------------------------------------------------------------
    "admin.title": ("Administration", "Administration"),
    "admin.open_account": ("Ouvrir un compte", "Open an account"),
    "admin.kind": ("Type de compte", "Kind of account"),
    "admin.holder": ("Titulaire", "Holder"),
    "admin.with_token": (
        "Créer aussi un jeton de connexion pour ce compte",
        "Also create a sign-in token for this account",
    ),
    "admin.opened": ("Compte ouvert pour {name}.", "Account opened for {name}."),
    "admin.token_for": ("Jeton de connexion de {name}", "Sign-in token for {name}"),
    "admin.create_token": ("Créer un jeton", "Create a token"),
    "admin.token_role": ("Rôle", "Role"),
    "admin.token_name": ("Nom du jeton (qui le détient)", "Token name (who holds it)"),
    "admin.token_account": (
        "Compte (pour adhérent, commerçant, comptoir)",
        "Account (for member, merchant, exchange point)",
    ),
    "admin.tokens": ("Jetons", "Tokens"),
    "admin.token_created": ("créé le", "created"),
    "admin.token_revoked": ("révoqué le", "revoked"),
    "admin.revoke": ("Révoquer", "Revoke"),
    "admin.revoked": ("Le jeton « {name} » est révoqué.", "Token “{name}” is revoked."),
    "admin.token_search": ("Nom commençant par", "Name starting with"),
    "admin.issue": ("Émettre des RolloN", "Issue RolloN"),
    "admin.issue_intro": (
        "Contre des euros reçus : ils entrent au fonds de garantie, un pour un.",
        "Against euros received: they go into the guarantee fund, one for one.",
    ),
    "admin.euro_reference": (
        "Référence des euros (reçu, virement)",
        "Euro reference (receipt, bank transfer)",
    ),
    "admin.issue_submit": ("Émettre", "Issue"),
    "admin.issued": ("{amount} émis pour {name}.", "{amount} issued to {name}."),
    "admin.bonus": ("dont bonus {bonus}", "bonus {bonus} included"),
    "admin.onboard": ("Inscrire un commerçant", "Onboard a merchant"),
    "admin.legal_name": ("Raison sociale", "Legal name"),
    "admin.trade_name": ("Enseigne", "Trade name"),
    "admin.siret": ("SIRET", "SIRET"),
    "admin.category": ("Catégorie", "Category"),
    "admin.address": ("Adresse", "Address"),
    "admin.postcode": ("Code postal", "Postcode"),
    "admin.city": ("Ville", "City"),
    "admin.iban": ("IBAN", "IBAN"),
    "admin.onboarded": (
        "{name} est inscrit ; son compte : {account}.",
        "{name} is onboarded; its account: {account}.",
    ),
    "admin.settle": ("Virer les reconversions", "Pay out reconversions"),
    "admin.settle_intro": (
        "Dû aux commerçants pour leurs reconversions : {total}.",
        "Owed to merchants for their reconversions: {total}.",
    ),
    "admin.execution_date": ("Date d'exécution des virements", "Execution date of the transfers"),
    "admin.settlement_file": ("Fichier SEPA (pain.001)", "SEPA file (pain.001)"),
    "admin.settlement_cancel": ("La banque l'a refusé", "The bank refused it"),
    "admin.settlement_line": (
        "{count} virements, {total}, exécution le {day}",
        "{count} transfers, {total}, executed on {day}",
    ),
    "admin.settle_submit": ("Préparer le fichier de virements SEPA", "Make the SEPA payment file"),
    "admin.settlements": ("Fichiers de virements", "Payment files"),
    "admin.settlement_paid": ("Marquer comme viré", "Mark as paid"),
    "admin.settlement_done": ("Virements enregistrés comme faits.", "Payouts recorded as done."),
    "admin.settlement_made": (
        "Fichier prêt : {count} virements pour {total}.",
        "File ready: {count} transfers for {total}.",
    ),
    # -- auditor -------------------------------------------------------------------------
    "audit.title": ("Contrôle des comptes", "Audit"),
    "audit.trial_balance": ("Balance", "Trial balance"),
    "audit.at": ("À la date du (sinon : maintenant)", "As of (else: now)"),
    "audit.ledger_total": ("Total du registre {ledger}", "Total of ledger {ledger}"),
    "audit.as_of_seq": ("Jusqu'à l'écriture n° {seq}", "Up to entry no. {seq}"),
    "audit.reconciliation": ("Couverture par le fonds de garantie", "Guarantee fund coverage"),
    "audit.circulation": ("RolloN en circulation", "RolloN in circulation"),
    "audit.reserve": ("Réserve en euros", "Reserve in euros"),
    "audit.held": ("Détenus par les comptes", "Held by the accounts"),
    "audit.difference": ("Écart", "Difference"),
    "audit.covered": ("Le fonds couvre chaque RolloN.", "The fund covers every RolloN."),
    "audit.not_covered": (
        "Le fonds ne couvre pas la circulation !",
        "The fund does not cover the circulation!",
    ),
    "audit.verify": ("Vérification du journal", "Journal verification"),
    "audit.verify_run": ("Vérifier maintenant", "Verify now"),
    "audit.verify_ok": (
        "Tout est conforme : {entries} écritures et {checkpoints} points de contrôle signés "
        "vérifiés.",
        "All holds: {entries} entries and {checkpoints} signed checkpoints checked.",
    ),
    "audit.verify_failed": (
        "{count} anomalies trouvées :",
        "{count} problems found:",
    ),
    "audit.signed_through": (
        "Signé jusqu'à l'écriture n° {seq}.",
        "Signed up to entry no. {seq}.",
    ),
    "audit.exports": ("Exports", "Exports"),
    "audit.format": ("Format", "Format"),
    "audit.from": ("Du", "From"),
    "audit.to": ("Au (exclu)", "To (excluded)"),
    "audit.format.fec": ("FEC (fichier des écritures comptables)", "FEC (French ledger file)"),
    "audit.format.csv": ("CSV", "CSV"),
    "audit.format.beancount": ("Beancount", "Beancount"),
    "audit.format.journal": (
        "Journal complet (vérification hors ligne)",
        "Whole journal (offline verification)",
    ),
    "audit.monthly": ("Activité mensuelle", "Monthly activity"),
    "audit.month": ("Mois", "Month"),
    "audit.statements": ("Relevés bancaires du fonds", "The fund's bank statements"),
    "audit.statements_intro": (
        "Importez un relevé du compte du fonds de garantie (CAMT.053 ou CSV, {max_kb} Ko au "
        "plus) : ses lignes sont rapprochées des dépôts et des virements du registre.",
        "Import a statement of the guarantee fund's account (CAMT.053 or CSV, at most "
        "{max_kb} KB): its lines are matched with the ledger's deposits and payouts.",
    ),
    "audit.statement_file": ("Fichier du relevé", "Statement file"),
    "audit.statement_import": ("Importer et rapprocher", "Import and reconcile"),
    "audit.statement_line": ("Ligne {line} : {message}", "Line {line}: {message}"),
    "audit.statement_period": ("Du {start} au {end}", "From {start} to {end}"),
    "audit.statement_lines": ("{count} lignes", "{count} lines"),
    "audit.reconciled": (
        "Rapproché : chaque ligne du relevé a son mouvement dans le registre.",
        "Reconciled: every line of the statement has its movement in the ledger.",
    ),
    "audit.not_reconciled": (
        "Écart de {difference} entre le relevé et le registre, expliqué ci-dessous.",
        "A difference of {difference} between the statement and the ledger, explained below.",
    ),
    "audit.matched": ("Lignes rapprochées", "Matched lines"),
    "audit.unmatched_lines": (
        "Lignes du relevé sans mouvement dans le registre",
        "Statement lines with no movement in the ledger",
    ),
    "audit.unmatched_movements": (
        "Mouvements du registre absents du relevé",
        "Ledger movements missing from the statement",
    ),
    "audit.explanation": ("Explication de l'écart", "The difference explained"),
    "audit.statement_total": ("Total du relevé", "Statement total"),
    "audit.statement": ("Relevé {ref}", "Statement {ref}"),
    "explain.bank_lines_not_in_ledger": (
        "Mouvements de la banque sans virement dans le registre (frais bancaires, versement "
        "de subventions, retrait de la part de l'association, ou émission ou virement jamais "
        "enregistré)",
        "Moved by the bank but recorded by no ledger transfer (bank fees, grant payments, "
        "withdrawals of the association's share, or an issuance or payout never recorded)",
    ),
    "explain.ledger_transfers_not_on_statement": (
        "Enregistrés dans le registre pendant la période, pas (encore) passés par la banque",
        "Recorded by the ledger within the period, not booked by the bank (yet)",
    ),
    "explain.booked_on_another_day": (
        "Passés par la banque dans la période, enregistrés dans le registre juste avant ou après",
        "Booked by the bank within the period, recorded by the ledger just before or after",
    ),
    "audit.ledger_bank_total": ("Total du registre", "Ledger total"),
    "audit.count": ("Nombre", "Count"),
    "system.issuance": ("Émission (RolloN en circulation)", "Issuance (RolloN in circulation)"),
    "system.fees": ("Commissions", "Fees"),
    "system.reserve": ("Réserve (fonds de garantie)", "Reserve (guarantee fund)"),
    "system.bank": ("Banque (monde extérieur)", "Bank (outside world)"),
    "system.payouts_due": ("Virements dus aux commerçants", "Payouts due to merchants"),
    "system.revenue": ("Recettes de l'association", "Association's revenue"),
    "system.grants": ("Subventions", "Grants"),
    "audit.chart_alt": (
        "Graphique de la circulation et de la réserve, mois par mois",
        "Chart of circulation and reserve, month by month",
    ),
    "report.issued": ("RolloN émis", "RolloN issued"),
    "report.bonus_from_grants": ("Bonus sur le change", "Bonus on change"),
    "report.transfers": ("Virements entre adhérents", "Transfers between members"),
    "report.payments": ("Paiements chez les commerçants", "Payments at merchants"),
    "report.refunds": ("Remboursements", "Refunds"),
    "report.reconverted": ("Reconvertis en euros", "Reconverted to euros"),
    "report.reconversion_fees": ("Commissions de reconversion", "Reconversion fees"),
    "report.payouts": ("Virés aux commerçants", "Paid out to merchants"),
    "report.circulation_start": ("Circulation au début du mois", "Circulation at the start"),
    "report.circulation_end": ("Circulation à la fin du mois", "Circulation at the end"),
    "report.reserve_end": ("Réserve à la fin du mois", "Reserve at the end"),
    "report.active_members": ("Adhérents actifs", "Active members"),
    "report.active_merchants": ("Commerçants actifs", "Active merchants"),
    # -- directory -----------------------------------------------------------------------
    "directory.title": ("Où payer en RolloN", "Where to pay in RolloN"),
    "directory.city": ("Ville", "City"),
    "directory.category": ("Catégorie", "Category"),
    "directory.name": ("Nom", "Name"),
    "directory.any": ("Toutes", "Any"),
    "directory.empty": (
        "Aucun commerçant ne correspond à cette recherche.",
        "No merchant matches this search.",
    ),
    "category.bakery": ("Boulangerie, pâtisserie", "Bakery"),
    "category.grocery": ("Épicerie, alimentation", "Grocery"),
    "category.farm_producer": ("Producteur, vente à la ferme", "Farm producer"),
    "category.restaurant": ("Restaurant", "Restaurant"),
    "category.cafe_bar": ("Café, bar", "Café, bar"),
    "category.clothing": ("Vêtements", "Clothing"),
    "category.books_culture": ("Livres, culture", "Books, culture"),
    "category.health_wellbeing": ("Santé, bien-être", "Health, wellbeing"),
    "category.crafts": ("Artisanat", "Crafts"),
    "category.home_garden": ("Maison, jardin", "Home, garden"),
    "category.leisure_tourism": ("Loisirs, tourisme", "Leisure, tourism"),
    "category.mobility": ("Mobilité", "Mobility"),
    "category.services": ("Services", "Services"),
    "category.association": ("Association", "Association"),
    "category.other": ("Autre", "Other"),
    # -- errors --------------------------------------------------------------------------
    "error.title": ("Une erreur est survenue", "Something went wrong"),
    "error.home": ("Retour à l'accueil", "Back to the home page"),
    "error.not_found": ("Cette page n'existe pas.", "This page does not exist."),
    "error.forbidden": (
        "Votre compte ne donne pas accès à cette page.",
        "Your account does not give access to this page.",
    ),
    "error.csrf": (
        "Le formulaire a expiré ou ne vient pas de ce site. Rechargez la page et recommencez.",
        "The form has expired or does not come from this site. Reload the page and try again.",
    ),
    "error.bad_request": ("La demande est invalide.", "The request is invalid."),
    "error.internal": (
        "Le service a rencontré une erreur inattendue ; elle est enregistrée. Réessayez plus tard.",
        "The service failed unexpectedly; the error is logged. Please try again later.",
    ),
    "error.unavailable": (
        "Le service est momentanément surchargé. Réessayez dans un instant.",
        "The service is busy right now. Please try again in a moment.",
    ),
    "error.halted": (
        "Le registre est arrêté après une incohérence ; l'association est prévenue.",
        "The ledger stopped after an inconsistency; the association has been told.",
    ),
    "error.required": ("Ce champ est obligatoire.", "This field is required."),
    "error.too_long": (
        "Ce texte est trop long ({max} caractères au plus).",
        "This text is too long (at most {max} characters).",
    ),
    "error.bad_account_id": (
        "Ce n'est pas un numéro de compte (32 chiffres et lettres a à f).",
        "This is not an account number (32 digits and letters a to f).",
    ),
    "error.bad_choice": ("Choix invalide.", "Invalid choice."),
    "error.bad_date": (
        "Ce n'est pas une date (AAAA-MM-JJ).",
        "This is not a date (YYYY-MM-DD).",
    ),
    "error.bad_moment": (
        "Ce n'est pas une date avec une heure.",
        "This is not a date with a time.",
    ),
    "error.bad_month": ("Ce n'est pas un mois (AAAA-MM).", "This is not a month (YYYY-MM)."),
    "error.amount_malformed": (
        "Ce n'est pas un montant : écrivez par exemple 12,50.",
        "This is not an amount: write for example 12,50.",
    ),
    "error.too_many_decimals": (
        "Deux chiffres après la virgule au plus.",
        "At most two digits after the decimal comma.",
    ),
    "error.amount_must_be_positive": (
        "Le montant doit être d'au moins 0,01.",
        "The amount must be at least 0,01.",
    ),
    "error.amount_too_large": ("Ce montant est trop grand.", "This amount is too large."),
    "error.token_invalid": (
        "Ce jeton est inconnu ou a été révoqué.",
        "This token is unknown or has been revoked.",
    ),
    "error.unauthorized": ("Collez votre jeton.", "Paste your token."),
    "error.too_many_failed_logins": (
        "Trop d'essais de connexion depuis cette adresse : attendez une minute.",
        "Too many sign-in attempts from this address: wait a minute.",
    ),
    "error.insufficient_funds": (
        "Solde insuffisant pour ce montant.",
        "The balance is too low for this amount.",
    ),
    "error.account_not_found": (
        "Aucun compte ne porte ce numéro.",
        "No account has this number.",
    ),
    "error.account_closed": ("Ce compte est fermé.", "This account is closed."),
    "error.same_account": (
        "Vous ne pouvez pas vous envoyer de l'argent à vous-même.",
        "You cannot send money to yourself.",
    ),
    "error.destination_not_member": (
        "Ce compte n'est pas celui d'un adhérent : pour payer un commerçant, scannez son code QR.",
        "This is not a member's account: to pay a merchant, scan their QR code.",
    ),
    "error.account_kind_not_allowed": (
        "On n'émet des RolloN que pour les adhérents et les commerçants.",
        "RolloN are issued to members and merchants only.",
    ),
    "error.id_already_failed": (
        "Cette opération a déjà été refusée ; recommencez depuis le formulaire.",
        "This operation was refused before; start again from the form.",
    ),
    "error.exists_with_different_fields": (
        "Ce formulaire a déjà servi pour une autre opération ; recommencez.",
        "This form was already used for another operation; start again.",
    ),
    "error.invalid_name": ("Le nom est vide ou trop long.", "The name is empty or too long."),
    "error.token_not_found": ("Aucun jeton ne porte ce numéro.", "No token has this number."),
    "error.account_required": (
        "Ce rôle demande un numéro de compte.",
        "This role needs an account number.",
    ),
    "error.account_not_allowed": (
        "Ce rôle n'agit pour aucun compte : laissez le numéro vide.",
        "This role acts for no account: leave the number empty.",
    ),
    "error.account_kind_mismatch": (
        "Ce compte n'est pas du type que ce rôle demande.",
        "This account is not of the kind this role needs.",
    ),
    "error.payload_malformed": (
        "Ce n'est pas un code QR RolloN lisible.",
        "This is not a readable RolloN QR code.",
    ),
    "error.payload_truncated": (
        "Ce code QR est incomplet : recopiez-le en entier.",
        "This QR code is incomplete: copy all of it.",
    ),
    "error.payload_bad_crc": (
        "Ce code QR est abîmé (somme de contrôle fausse).",
        "This QR code is damaged (wrong checksum).",
    ),
    "error.payload_not_rollon": (
        "Ce code QR n'est pas un code de paiement RolloN.",
        "This QR code is not a RolloN payment code.",
    ),
    "error.payload_wrong_currency": (
        "Ce code QR demande une autre monnaie que le RolloN.",
        "This QR code asks for another currency than the RolloN.",
    ),
    "error.payload_bad_signature": (
        "Ce code QR n'est pas signé par RolloN ou a été modifié : ne payez pas.",
        "This QR code is not signed by RolloN or was changed: do not pay.",
    ),
    "error.payload_unknown_key": (
        "Ce code QR est signé par une clé que RolloN ne reconnaît pas : ne payez pas.",
        "This QR code is signed by a key RolloN does not know: do not pay.",
    ),
    "error.payload_expired": (
        "Ce code QR a expiré : demandez-en un nouveau au commerçant.",
        "This QR code has expired: ask the merchant for a new one.",
    ),
    "error.payload_mismatch": (
        "Ce code QR ne correspond pas à sa demande de paiement : ne payez pas.",
        "This QR code does not match its payment request: do not pay.",
    ),
    "error.amount_mismatch": (
        "Le montant a changé depuis la vérification : recommencez.",
        "The amount changed since it was checked: start again.",
    ),
    "error.amount_required": ("Indiquez le montant à payer.", "Give the amount to pay."),
    "error.request_expired": (
        "Cette demande de paiement a expiré : demandez-en une nouvelle.",
        "This payment request has expired: ask for a new one.",
    ),
    "error.request_cancelled": (
        "Le commerçant a annulé cette demande de paiement.",
        "The merchant cancelled this payment request.",
    ),
    "error.request_already_paid": (
        "Cette demande de paiement est déjà payée.",
        "This payment request is paid already.",
    ),
    "error.request_busy": (
        "Trop de paiements en même temps sur cette demande : réessayez.",
        "Too many payments at once on this request: try again.",
    ),
    "error.request_not_found": (
        "Cette demande de paiement est inconnue.",
        "This payment request is unknown.",
    ),
    "error.request_not_paid": (
        "Cette demande n'a pas été payée : rien à rembourser.",
        "This request was not paid: nothing to refund.",
    ),
    "error.refund_exceeds_payment": (
        "On ne peut pas rembourser plus que ce qui a été payé.",
        "You cannot refund more than was paid.",
    ),
    "error.merchant_not_found": ("Ce commerçant est inconnu.", "This merchant is unknown."),
    "error.not_a_merchant": (
        "Ce compte n'est pas celui d'un commerçant inscrit.",
        "This account is not an onboarded merchant's.",
    ),
    "error.siret_malformed": (
        "Un SIRET a 14 chiffres.",
        "A SIRET has 14 digits.",
    ),
    "error.siret_checksum": (
        "Ce SIRET n'existe pas (sa clé de contrôle est fausse).",
        "This SIRET does not exist (its check digit is wrong).",
    ),
    "error.siren_checksum": (
        "Le SIREN de ce SIRET n'existe pas (sa clé de contrôle est fausse).",
        "The SIREN in this SIRET does not exist (its check digit is wrong).",
    ),
    "error.siret_exists": (
        "Un commerçant est déjà inscrit avec ce SIRET.",
        "A merchant with this SIRET is onboarded already.",
    ),
    "error.iban_malformed": ("Ce n'est pas un IBAN.", "This is not an IBAN."),
    "error.iban_checksum": (
        "Cet IBAN n'existe pas (sa clé de contrôle est fausse).",
        "This IBAN does not exist (its check digits are wrong).",
    ),
    "error.iban_length": (
        "Cet IBAN n'a pas la longueur de son pays.",
        "This IBAN does not have its country's length.",
    ),
    "error.iban_country": (
        "Les virements partent en SEPA : l'IBAN doit être d'un pays SEPA.",
        "Payouts go by SEPA: the IBAN must be from a SEPA country.",
    ),
    "error.invalid_postcode": ("Un code postal a 5 chiffres.", "A postcode has 5 digits."),
    "error.unknown_category": ("Catégorie inconnue.", "Unknown category."),
    "error.fund_iban_missing": (
        "L'IBAN du fonds de garantie n'est pas configuré (ROLLON_FUND_IBAN) : pas de "
        "fichier de virements possible.",
        "The guarantee fund's IBAN is not configured (ROLLON_FUND_IBAN): no payment file "
        "can be made.",
    ),
    "error.nothing_to_settle": (
        "Aucune reconversion n'attend de virement.",
        "No reconversion is waiting to be paid.",
    ),
    "error.invalid_execution_date": (
        "La date d'exécution ne peut pas être passée.",
        "The execution date cannot be in the past.",
    ),
    "error.settlement_cancelled": (
        "Ce fichier de virements a été annulé.",
        "This payment file was cancelled.",
    ),
    "error.settlement_paid": (
        "Ce fichier de virements est déjà marqué comme viré.",
        "This payment file is marked as paid already.",
    ),
    "error.merchant_exists": (
        "Ce commerçant est déjà inscrit.",
        "This merchant is onboarded already.",
    ),
    "error.invalid_city": ("La ville est vide ou trop longue.", "The city is empty or too long."),
    "error.invalid_address": (
        "L'adresse est vide ou trop longue.",
        "The address is empty or too long.",
    ),
    "error.statement_not_found": ("Ce relevé est inconnu.", "This statement is unknown."),
    "error.statement_empty": ("Le fichier est vide.", "The file is empty."),
    "error.csv_malformed": (
        "Ce fichier CSV est mal formé.",
        "This CSV file is malformed.",
    ),
    "error.csv_missing_column": (
        "Il manque une colonne au CSV (date de l'opération et montant, ou débit et crédit).",
        "A column is missing from the CSV (booking date and amount, or debit and credit).",
    ),
    "error.camt_malformed_xml": (
        "Ce fichier XML est mal formé.",
        "This XML file is malformed.",
    ),
    "error.camt_missing_field": (
        "Il manque un champ obligatoire à ce relevé CAMT.053.",
        "A required field is missing from this CAMT.053 statement.",
    ),
    "error.statement_bad_amount": ("Montant illisible.", "Unreadable amount."),
    "error.statement_bad_date": ("Date illisible.", "Unreadable date."),
    "error.settlement_not_found": (
        "Ce fichier de virements est inconnu.",
        "This payment file is unknown.",
    ),
    "error.empty_period": (
        "La fin de la période doit suivre son début.",
        "The end of the period must come after its start.",
    ),
    "error.journal_export_is_whole": (
        "Le journal complet ne se découpe pas : laissez les dates vides.",
        "The whole journal cannot be cut: leave the dates empty.",
    ),
    "error.service": ("Refusé : {detail}", "Refused: {detail}"),
}


class Translator:
    """The catalogue in one language: `t("key", name=...)` gives the text."""

    def __init__(self, lang: Lang) -> None:
        self.lang = lang
        self._column = 0 if lang is Lang.FR else 1

    def __call__(self, key: str, **values: object) -> str:
        entry = CATALOGUE.get(key)
        if entry is None:
            # A missing key is a bug the catalogue test catches; show the key, not a crash.
            return key
        text = entry[self._column]
        return text.format(**values) if values else text

    def has(self, key: str) -> bool:
        return key in CATALOGUE

    def error(self, code: str, detail: str) -> str:
        """A service's refusal in words: our own text for codes we know, else its detail."""
        key = f"error.{code}"
        if key in CATALOGUE:
            return self(key)
        return self("error.service", detail=detail)
