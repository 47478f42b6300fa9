"""Counting statutory deadlines (期限): hours as elapsed time, days by a configurable calendar.

Decree 310 does not define 日; the default counts calendar days with the start day excluded
and ends at the close of the last day in China Standard Time, moving past listed holidays
(as CPL Art.105 does for criminal procedure). A working-day calendar is available for those
who read the Administrative Penalty Law's Art.85 into it. `now` is never read here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Literal, Protocol

CST = timezone(timedelta(hours=8), "CST")

Unit = Literal["hour", "day", "month"]


@dataclass(frozen=True)
class Limit:
    value: int
    unit: Unit
    rule: str  # the provision, e.g. "R310 Art.5(2)"


class DayCounting(Protocol):
    def add_days(self, start: datetime, days: int) -> datetime: ...

    def add_hours(self, start: datetime, hours: int) -> datetime: ...

    def add_months(self, start: datetime, months: int) -> datetime: ...


def _end_of(day: date) -> datetime:
    return datetime.combine(day, time(23, 59, 59, 999000), CST)


def _months_later(start: datetime, months: int) -> date:
    """The corresponding day `months` later (CPL Art.105: a period in months ends on the corresponding day; a month
    without it ends on its last day)."""
    day = start.astimezone(CST).date()
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class CalendarDays:
    """Calendar days: the start day is not counted; a last day on a listed holiday moves on."""

    holidays: frozenset[date] = field(default_factory=frozenset)

    def add_hours(self, start: datetime, hours: int) -> datetime:
        return start + timedelta(hours=hours)

    def add_days(self, start: datetime, days: int) -> datetime:
        last = start.astimezone(CST).date() + timedelta(days=days)
        while last in self.holidays:
            last += timedelta(days=1)
        return _end_of(last)

    def add_months(self, start: datetime, months: int) -> datetime:
        last = _months_later(start, months)
        while last in self.holidays:
            last += timedelta(days=1)
        return _end_of(last)


@dataclass(frozen=True)
class WorkingDays:
    """Working days: weekends and listed holidays are skipped; listed make-up days (调休) count."""

    holidays: frozenset[date] = field(default_factory=frozenset)
    workdays: frozenset[date] = field(default_factory=frozenset)

    def add_hours(self, start: datetime, hours: int) -> datetime:
        return start + timedelta(hours=hours)

    def _working(self, day: date) -> bool:
        if day in self.workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def add_months(self, start: datetime, months: int) -> datetime:
        last = _months_later(start, months)  # months are calendar months; a last day off work moves on
        while not self._working(last):
            last += timedelta(days=1)
        return _end_of(last)

    def add_days(self, start: datetime, days: int) -> datetime:
        day = start.astimezone(CST).date()
        counted = 0
        while counted < days:
            day += timedelta(days=1)
            if self._working(day):
                counted += 1
        return _end_of(day)


@dataclass(frozen=True)
class CompressedDays:
    """A demonstration calendar in which a statutory day lasts `seconds_per_day` seconds."""

    seconds_per_day: float

    def add_hours(self, start: datetime, hours: int) -> datetime:
        return start + timedelta(seconds=self.seconds_per_day * hours / 24)

    def add_days(self, start: datetime, days: int) -> datetime:
        return start + timedelta(seconds=self.seconds_per_day * days)

    def add_months(self, start: datetime, months: int) -> datetime:
        return start + timedelta(seconds=self.seconds_per_day * 30 * months)


def due_at(start: datetime, limit: Limit, counting: DayCounting | None = None) -> datetime:
    calendar = counting or CalendarDays()
    if limit.unit == "hour":
        return calendar.add_hours(start, limit.value)
    if limit.unit == "month":
        return calendar.add_months(start, limit.value)
    return calendar.add_days(start, limit.value)


def holidays_from(days: Iterable[str]) -> frozenset[date]:
    return frozenset(date.fromisoformat(d) for d in days)
