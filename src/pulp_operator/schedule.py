"""Cron schedules of recurring backups (standard five-field expressions or @daily-style macros,
evaluated in UTC with croniter)."""

from __future__ import annotations

import datetime

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
PATTERN = r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|\S+( +\S+){4})$"
"""What the CRD admits (a CEL rule); `check` does the full parse."""
SHAPE_MESSAGE = (
    "schedule must be a cron expression of five fields (minute hour day-of-month month"
    f" day-of-week, UTC) or one of {', '.join(MACROS)}"
)


def check(expression: str) -> str:
    """The expression when it is a valid schedule that fires; ValueError saying why otherwise."""
    text = expression.strip()
    if not (text in MACROS or len(text.split()) == 5):
        raise ValueError(f"{SHAPE_MESSAGE}, not {expression!r}")
    try:
        croniter(text, _EPOCH).get_next(datetime.datetime)
    except (CroniterBadCronError, CroniterBadDateError, ValueError, KeyError) as exc:
        raise ValueError(f"schedule {expression!r} is not a valid cron expression: {exc}") from exc
    return text


_EPOCH = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)


def latest_due(
    expression: str, after: datetime.datetime, now: datetime.datetime
) -> datetime.datetime | None:
    """The latest time the schedule fired in (after, now], if any (missed earlier ones collapse
    into it, as a CronJob with concurrencyPolicy Forbid would run only one)."""
    # get_prev is strictly before its start: start just after now so that a firing at now counts.
    start = now.replace(microsecond=0) + datetime.timedelta(seconds=1)
    previous: datetime.datetime = croniter(expression, start).get_prev(datetime.datetime)
    return previous if after < previous <= now else None


def next_after(expression: str, moment: datetime.datetime) -> datetime.datetime:
    result: datetime.datetime = croniter(expression, moment).get_next(datetime.datetime)
    return result
