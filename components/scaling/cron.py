"""Cron expressions as KEDA's cron scaler reads them (robfig/cron's standard parser: five fields,
minute hour day-of-month month day-of-week; ``*``, lists, ranges, steps, month and weekday names,
``?`` for a day field, and the ``@daily``-style descriptors). A wrong one is refused at preview:
KEDA would only log it and never scale."""

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

#: (field, lowest, highest, names) of the five fields.
FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    ("month", 1, 12, {n: i + 1 for i, n in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}),
    ("day of week", 0, 6, {n: i for i, n in enumerate("sun mon tue wed thu fri sat".split())}),
)
DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}


def _value(text: str, field: str, lo: int, hi: int, names: dict) -> int:
    v = names.get(text.lower()) if not text.isdigit() else int(text)
    if v is None:
        raise ValueError(f"{field} {text!r} is not a number" + (f" or a name ({', '.join(names)})" if names else ""))
    if not lo <= v <= hi:
        raise ValueError(f"{field} {v} is outside {lo}-{hi}")
    return v


def _field(text: str, field: str, lo: int, hi: int, names: dict) -> None:
    for part in text.split(","):
        if not part:
            raise ValueError(f"{field} {text!r} has an empty list item")
        rng, _, step = part.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            raise ValueError(f"{field} step {step!r} is not a positive number")
        if rng in ("*", "?"):
            if rng == "?" and field not in ("day of month", "day of week"):
                raise ValueError(f"'?' is only allowed in the day fields, not in the {field}")
            continue
        start, dash, end = rng.partition("-")
        a = _value(start, field, lo, hi, names)
        if dash:
            b = _value(end, field, lo, hi, names)
            if b < a:
                raise ValueError(f"{field} range {rng!r} runs backwards")


def cron_problem(expr: str) -> str | None:
    """Why ``expr`` is not a cron expression KEDA's cron scaler accepts, or None."""
    text = expr.strip()
    if text.lower() in DESCRIPTORS or re.fullmatch(r"@every\s+\S+", text):
        return None
    parts = text.split()
    if len(parts) != 5:
        return (
            f"{expr!r} has {len(parts)} field(s); KEDA's cron scaler takes five "
            "(minute hour day-of-month month day-of-week, e.g. '0 8 * * 1-5')"
        )
    for part, (field, lo, hi, names) in zip(parts, FIELDS, strict=True):
        try:
            _field(part, field, lo, hi, names)
        except ValueError as e:
            return f"{expr!r} is not a valid cron expression: {e}"
    return None


def timezone_problem(name: str) -> str | None:
    """Why ``name`` is not an IANA time zone (KEDA loads it with Go's time.LoadLocation), or None."""
    try:
        ZoneInfo(name)
        return None
    except (ZoneInfoNotFoundError, ValueError):
        import difflib

        close = difflib.get_close_matches(name, sorted(available_timezones()), n=1)
        return f"{name!r} is not an IANA time zone" + (
            f" (did you mean {close[0]!r}?)" if close else " (e.g. Europe/Berlin, UTC)"
        )
