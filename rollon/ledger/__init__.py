"""The double-entry core of the RolloN: accounts, transfers, the pure state machine,
storage, the group-commit hot path, the hash-chained journal, the currency's operations
and the audit of all of it. Nothing here knows about merchants or HTTP."""
