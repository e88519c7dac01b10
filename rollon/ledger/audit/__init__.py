"""What auditors use: journal export and offline proof, FEC/CSV/Beancount exports, reserve
reconciliation against bank statements, exchange-point closing and activity reports.

Every reader here runs in one read transaction (a consistent snapshot) and streams the journal
page by page, so memory stays bounded by the number of accounts, never by the journal.
"""
