from django import template

from jobs import pricing

register = template.Library()


@register.filter
def dollars(micro_cents):
    """225000 → $0.225"""
    if micro_cents is None or micro_cents == "":
        return "—"
    return pricing.format_dollars(micro_cents)


@register.filter
def micro_cents(value):
    """225000 → 225,000 µ¢"""
    if value is None or value == "":
        return "—"
    return pricing.format_micro_cents(value)


@register.filter
def duration(seconds):
    """125.4 → "2 min 5 s"."""
    if seconds is None or seconds == "":
        return "—"
    whole = round(float(seconds))
    minutes, secs = divmod(whole, 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


@register.filter
def get_item(mapping, key):
    return mapping.get(key) if hasattr(mapping, "get") else None


@register.simple_tag
def share(part, whole):
    """An integer percentage (no float), or — for an empty whole."""
    if not whole:
        return "—"
    return f"{part * 100 // whole}%"
