"""The one error type of the audit modules: bad input from an auditor or a file."""

from __future__ import annotations


class AuditInputError(ValueError):
    """Input the audit functions refuse: `code` is stable for clients, the message says why
    in words a person understands, `line` points into an uploaded file when it helps."""

    def __init__(self, code: str, message: str, line: int | None = None) -> None:
        super().__init__(message if line is None else f"line {line}: {message}")
        self.code = code
        self.line = line
