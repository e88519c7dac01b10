"""Merchants: directory, payment requests and their signed QR payloads, refunds,
reconversions and the SEPA payout file. Knows the ledger, never HTTP."""
