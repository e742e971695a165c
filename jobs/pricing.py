"""The model catalog and the cost arithmetic: the one source of truth for prices.

A model is data: its slug, its inputs with their allowed values, its base cost in
micro-cents per unit and the factor each choice multiplies the cost by. The form,
the server-side price and the browser's live preview (which receives
``catalog_for_browser()`` through ``json_script``) all read this table, so adding a
model is an entry in ``MODELS``, not new view code.

Money is integer micro-cents (1,000,000 = US$1.00). Factors are fractions of
integers so that no float ever touches a price.
"""

from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

MICRO_CENTS_PER_DOLLAR = 1_000_000


@dataclass(frozen=True)
class Choice:
    value: str
    label: str
    factor: Fraction = Fraction(1)
    # How this choice reads in the price breakdown ("10 s", "1.5 (Pro)"); empty when it adds nothing.
    price_note: str = ""


@dataclass(frozen=True)
class Input:
    """One input of a model, named exactly as the API names it."""

    name: str
    label: str
    kind: str  # "text", "choice" or "integer"
    required: bool = True
    choices: tuple[Choice, ...] = ()
    default: str | None = None
    max_length: int | None = None
    min_value: int | None = None
    max_value: int | None = None
    help_text: str = ""

    def choice(self, value):
        for choice in self.choices:
            if choice.value == value:
                return choice
        raise KeyError(f"{value!r} is not an allowed {self.name}")


@dataclass(frozen=True)
class Model:
    slug: str
    name: str
    base_micro_cents: int  # per unit, see unit_label
    unit_label: str  # "per second"
    typical_seconds: int  # how long the API usually takes to finish
    inputs: tuple[Input, ...] = field(default_factory=tuple)

    def input(self, name):
        return next(i for i in self.inputs if i.name == name)

    def priced_inputs(self):
        return [i for i in self.inputs if i.kind == "choice"]

    def defaults(self):
        return {i.name: i.default for i in self.inputs if i.default is not None}

    def cost(self, params):
        """Exact cost in micro-cents of a job with these input values.

        ``params`` maps input names to the values the API receives (strings
        for choices). Raises ``KeyError`` for an unknown choice.
        """
        total = Fraction(self.base_micro_cents)
        for spec in self.priced_inputs():
            total *= spec.choice(params[spec.name]).factor
        return round_half_up(total)


def round_half_up(value: Fraction) -> int:
    """Nearest whole micro-cent, halves away from zero (never a float)."""
    sign = -1 if value < 0 else 1
    return sign * int((abs(value) * 2 + 1) // 2)


KLING_V25_TEXT_TO_VIDEO = Model(
    slug="kling/kling-text2video-v25/text-to-video",
    name="Kling Text2Video V2.5",
    base_micro_cents=45_000,
    unit_label="per second",
    typical_seconds=180,
    inputs=(
        Input(
            name="prompt",
            label="Prompt",
            kind="text",
            max_length=2500,
            help_text="Describe the scene, the camera and the motion.",
        ),
        Input(
            name="quality",
            label="Quality",
            kind="choice",
            default="std",
            choices=(
                Choice("std", "Standard", Fraction(1)),
                Choice("pro", "Pro", Fraction(3, 2), "1.5 (Pro)"),
            ),
        ),
        Input(
            name="duration",
            label="Duration",
            kind="choice",
            default="5",
            choices=(
                Choice("5", "5 seconds", Fraction(5), "5 s"),
                Choice("10", "10 seconds", Fraction(10), "10 s"),
            ),
        ),
        Input(
            name="aspect_ratio",
            label="Aspect ratio",
            kind="choice",
            default="16:9",
            choices=(
                Choice("16:9", "16:9 landscape"),
                Choice("9:16", "9:16 portrait"),
                Choice("1:1", "1:1 square"),
            ),
        ),
        Input(
            name="seed",
            label="Seed",
            kind="integer",
            required=False,
            min_value=0,
            max_value=2_147_483_647,
            help_text="Same seed and settings give a similar video. Leave empty for a random one.",
        ),
    ),
)

MODELS = {m.slug: m for m in (KLING_V25_TEXT_TO_VIDEO,)}
DEFAULT_MODEL = KLING_V25_TEXT_TO_VIDEO


def format_dollars(micro_cents: int) -> str:
    """``225000`` → ``$0.225``: at least two decimals, more only when needed."""
    amount = Decimal(int(micro_cents)) / MICRO_CENTS_PER_DOLLAR
    sign = "-" if amount < 0 else ""
    text = f"{abs(amount):,.6f}".rstrip("0")
    whole, _, decimals = text.partition(".")
    return f"{sign}${whole}.{decimals.ljust(2, '0')}"


def format_micro_cents(micro_cents: int) -> str:
    return f"{int(micro_cents):,} µ¢"


def dollars_to_micro_cents(dollars: Decimal) -> int:
    return round_half_up(Fraction(Decimal(dollars)) * MICRO_CENTS_PER_DOLLAR)


def catalog_for_browser(model: Model = DEFAULT_MODEL) -> dict:
    """The price rule as plain JSON data for the live preview in the browser."""
    return {
        "slug": model.slug,
        "name": model.name,
        "baseMicroCents": model.base_micro_cents,
        "baseNote": f"{format_dollars(model.base_micro_cents)} {model.unit_label}",
        "factors": {
            spec.name: {
                c.value: {"n": c.factor.numerator, "d": c.factor.denominator, "note": c.price_note}
                for c in spec.choices
            }
            for spec in model.priced_inputs()
        },
    }
