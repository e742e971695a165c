"""The dashboard as a person reads it: money in dollars and cents (the exact amount in a
tooltip), the catalog's words for options, shares that add up to 100 %, and each budget
as what is left of it.

``report`` keeps the exact integer micro-cents; only this module rounds, and only for
showing (the CSV keeps every micro-cent).
"""

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.utils.html import format_html

from .. import pricing

CENTS = Decimal("0.01")


def in_cents(micro_cents):
    """``225000`` → ``$0.23``: dollars with two decimals, halves rounded up."""
    amount = (Decimal(int(micro_cents)) / pricing.MICRO_CENTS_PER_DOLLAR).quantize(CENTS, ROUND_HALF_UP)
    return f"{'-' if amount < 0 else ''}${abs(amount):,.2f}"


@dataclass(frozen=True)
class Money:
    """An amount as the page shows it. In a template, ``{{ money }}`` is the rounded amount
    with the exact one in its tooltip (markup, as ``{{ form.field }}`` is); ``{{ money.short }}``
    the rounded text alone (for an SVG label or a tooltip of its own)."""

    micro_cents: int

    def __str__(self):
        # Templates turn a value into text with str() before escaping: safe markup survives.
        return self.__html__()

    @property
    def short(self):
        return in_cents(self.micro_cents)

    @property
    def exact(self):
        value = self.micro_cents
        return f"{pricing.format_dollars(value)} exactly ({pricing.format_micro_cents(value)})"

    def __html__(self):
        return format_html('<span class="money" title="{}">{}</span>', self.exact, self.short)


def money(micro_cents):
    """A ``Money``, or None for no amount."""
    return None if micro_cents is None else Money(int(micro_cents))


def quality_label(value):
    """The catalog's word for a quality ("Standard", "Pro"); the stored value if it has none."""
    for model in pricing.MODELS.values():
        try:
            return model.input("quality").choice(value).label
        except (StopIteration, KeyError):
            continue
    return value


def shares(amounts, total):
    """Whole percentages of ``total`` that add up to exactly 100: each share rounded down,
    then the points still missing go to the largest remainders (the first row on a tie).
    None for each amount when nothing was spent."""
    if total <= 0:
        return [None] * len(amounts)
    parts = [divmod(amount * 100, total) for amount in amounts]
    percents = [whole for whole, _ in parts]
    missing = 100 - sum(percents)
    by_remainder = sorted(range(len(parts)), key=lambda i: (-parts[i][1], i))
    for i in by_remainder[: max(missing, 0)]:
        percents[i] += 1
    return percents


# The breakdown tables: (id, title, the column's heading, the report's rows, the grouped
# value, how a value reads, what an empty value reads).
BREAKDOWN_TABLES = (
    ("by-project", "By project", "Project", "by_project", "project", str, "No project"),
    ("by-quality", "By quality", "Quality", "by_quality", "quality", quality_label, "—"),
    (
        "by-duration",
        "By duration",
        "Duration",
        "by_duration",
        "duration",
        lambda seconds: f"{seconds} s",
        "—",
    ),
)


def breakdowns(result):
    """The breakdown tables of a report, each row with its label, videos, spend and share."""
    tables = []
    for table_id, title, heading, name, key, label, empty in BREAKDOWN_TABLES:
        rows = getattr(result, name)
        percents = shares([row["spend"] for row in rows], result.total)
        tables.append(
            {
                "id": table_id,
                "title": title,
                "heading": heading,
                "empty": empty,
                "rows": [
                    {
                        "label": "" if row[key] in ("", None) else label(row[key]),
                        "videos": row["charged"],
                        "dollars": Money(row["spend"]),
                        "share": share,
                    }
                    for row, share in zip(rows, percents, strict=True)
                ],
            }
        )
    return tables


def with_shares(members, total):
    """The member rows, each with its spend as ``Money`` and its share of ``total``."""
    percents = shares([row["spend"] for row in members], total)
    return [
        {**row, "dollars": Money(row["spend"]), "budget_dollars": money(row["budget"]), "share": share}
        for row, share in zip(members, percents, strict=True)
    ]


def days(result):
    """The chart's numbers as table rows."""
    return [{"day": day, "videos": videos, "dollars": Money(spend)} for day, spend, videos in result.daily]


def budget_cards(budgets, warn_at_percent):
    """What is left of each budget this month, and when it starts again."""
    return [_budget_card(budget, warn_at_percent) for budget in budgets]


def _budget_card(budget, warn_at_percent):
    used = budget.spent * 100 // budget.limit if budget.limit else (100 if budget.spent else 0)
    state = "over" if budget.spent > budget.limit else ("warn" if used >= warn_at_percent else "ok")
    return {
        "title": "Team budget" if budget.kind == "team" else "Your budget",
        "left": Money(max(budget.remaining, 0)),
        "over_by": Money(-budget.remaining) if budget.remaining < 0 else None,
        "limit": Money(budget.limit),
        "raised": money(budget.raised) if budget.raised else None,
        "used": used,
        "bar": min(used, 100),  # the filled part of the bar, in a 100-wide drawing
        "state": state,
        # The holder's own date: a budget starts again at midnight in its zone.
        "resets_on": budget.resets_at.date(),
    }


def figures(result):
    """The report's headline amounts as ``Money``."""
    return {
        "total": Money(result.total),
        "average": Money(result.average),
        "projection": money(result.projection),
        "budget": money(result.budget),
        "raised": money(result.raised) if result.raised else None,
    }


class Dressed:
    """An alert or a raise as its partial shows it: the object itself, with the amounts
    named as ``Money`` (they come from jobs.alerts and jobs.approvals as micro-cents)."""

    def __init__(self, item, **amounts):
        self._item, self._amounts = item, amounts

    def __getattr__(self, name):
        amounts = self.__dict__["_amounts"]
        return amounts[name] if name in amounts else getattr(self.__dict__["_item"], name)


def partials(alerts_sent, raises, bill):
    """The page's alerts, raises and bill, their amounts in dollars and cents. A price drift
    keeps its exact amounts: it is about fractions of a cent."""
    return {
        "alerts_sent": [Dressed(a, spent=Money(a.spent), limit=Money(a.limit)) for a in alerts_sent],
        "raises": [Dressed(r, amount=Money(r.amount_micro_cents)) for r in raises],
        "bill": _bill(bill),
    }


def _bill(bill):
    outside = bill.get("outside")
    if not outside:
        return bill
    low, high = outside["low"], outside["high"]
    exactly = f"Exactly {pricing.format_dollars(low)} to {pricing.format_dollars(high)}"
    return {**bill, "outside": {**outside, "low": in_cents(low), "high": in_cents(high), "exactly": exactly}}
