"""Ledger time (nanoseconds since the epoch, UTC) against the association's calendar days.

The association counts its days in Normandy: a closing "for the 3rd of March" runs from local
midnight to local midnight, summer time included.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

LOCAL_ZONE = ZoneInfo("Europe/Paris")
NS_PER_S = 1_000_000_000
_NS_PER_US = 1_000


def to_datetime(ns: int) -> datetime:
    """The UTC moment of a ledger time (microsecond precision: all a datetime holds)."""
    seconds, rest = divmod(ns, NS_PER_S)
    return datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=rest // _NS_PER_US)


def to_ns(moment: datetime) -> int:
    """Ledger time of an aware datetime."""
    assert moment.tzinfo is not None, "a moment must carry its time zone"
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * NS_PER_S + delta.microseconds * _NS_PER_US


def local_date(ns: int) -> date:
    """The association's calendar day of a ledger time."""
    return to_datetime(ns).astimezone(LOCAL_ZONE).date()


def day_start_ns(day: date) -> int:
    """Ledger time of local midnight at the start of `day`."""
    return to_ns(datetime.combine(day, time(0), tzinfo=LOCAL_ZONE))


def day_bounds_ns(day: date) -> tuple[int, int]:
    """[start, end) of a local day, in ledger time."""
    return day_start_ns(day), day_start_ns(day + timedelta(days=1))


def month_bounds_ns(year: int, month: int) -> tuple[int, int]:
    """[start, end) of a local calendar month, in ledger time."""
    following = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    return day_start_ns(date(year, month, 1)), day_start_ns(following)


class LocalDays:
    """local_date for a stream of mostly increasing times: the day's bounds are kept, so
    consecutive entries of one day cost two comparisons instead of a time-zone conversion."""

    def __init__(self) -> None:
        self._start_ns = 0
        self._end_ns = 0
        self._day = date(1970, 1, 1)

    def __call__(self, ns: int) -> date:
        if not self._start_ns <= ns < self._end_ns:
            self._day = local_date(ns)
            self._start_ns, self._end_ns = day_bounds_ns(self._day)
        return self._day
