"""NCRONTAB schedules (`{second} {minute} {hour} {day} {month} {day-of-week}`).

The Functions runtime accepts six fields (five are read as minute-first); evaluating
them here the same way keeps the local host from firing on a different beat than
Azure would. Times are UTC, as on Flex Consumption where time zones are unsupported.
Hand-written, not croniter: croniter fires a schedule that names both a day of the month
and a day of the week on either (Vixie cron), NCrontab, which the host uses, on both.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_RANGES = [(0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6)]


class ScheduleError(ValueError):
    """The expression is not a valid NCRONTAB schedule."""


def _field(text: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleError(f"bad step in {text!r}")
            step = int(step_text)
        if part == "*":
            start, end = low, high
        elif "-" in part:
            a, b = part.split("-", 1)
            if not (a.isdigit() and b.isdigit()):
                raise ScheduleError(f"bad range in {text!r}")
            start, end = int(a), int(b)
        elif part.isdigit():
            start = int(part)
            end = high if step > 1 else start
        else:
            raise ScheduleError(f"unsupported field {text!r}")
        if not (low <= start <= end <= high):
            raise ScheduleError(f"{text!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


class Schedule:
    def __init__(self, expression: str) -> None:
        parts = expression.split()
        if len(parts) == 5:
            parts = ["0", *parts]
        if len(parts) != 6:
            raise ScheduleError(f"{expression!r} needs 6 fields (second minute hour day month dow)")
        fields = [_field(p, lo, hi) for p, (lo, hi) in zip(parts, _RANGES, strict=True)]
        self.seconds, self.minutes, self.hours, self.days, self.months, self.weekdays = fields
        self.expression = expression

    def matches(self, t: datetime) -> bool:
        weekday = (t.weekday() + 1) % 7  # cron counts Sunday as 0
        return (
            t.second in self.seconds
            and t.minute in self.minutes
            and t.hour in self.hours
            and t.day in self.days
            and t.month in self.months
            and weekday in self.weekdays
        )

    def next_after(self, t: datetime) -> datetime:
        t = t.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1)
        limit = t + timedelta(days=366 * 5)
        while t < limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0, second=0) + timedelta(days=32)).replace(
                    day=1
                )
                continue
            if t.day not in self.days or (t.weekday() + 1) % 7 not in self.weekdays:
                t = t.replace(hour=0, minute=0, second=0) + timedelta(days=1)
                continue
            if t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
                continue
            if t.minute not in self.minutes:
                t = t.replace(second=0) + timedelta(minutes=1)
                continue
            if t.second not in self.seconds:
                t += timedelta(seconds=1)
                continue
            return t
        raise ScheduleError(f"{self.expression!r} never fires")
