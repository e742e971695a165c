from decimal import Decimal
from fractions import Fraction

import pytest

from jobs import pricing
from sandbox import engine

MODEL = pricing.DEFAULT_MODEL

EXPECTED = {
    ("std", "5"): 225_000,
    ("std", "10"): 450_000,
    ("pro", "5"): 337_500,
    ("pro", "10"): 675_000,
}


@pytest.mark.parametrize("aspect_ratio", ["16:9", "9:16", "1:1"])
@pytest.mark.parametrize(("quality", "duration"), list(EXPECTED))
def test_every_combination_has_the_published_price(quality, duration, aspect_ratio):
    params = {"prompt": "x", "quality": quality, "duration": duration, "aspect_ratio": aspect_ratio}
    cost = MODEL.cost(params)
    assert cost == EXPECTED[(quality, duration)]
    assert isinstance(cost, int)


@pytest.mark.parametrize(("quality", "duration"), list(EXPECTED))
def test_the_sandbox_charges_what_the_studio_estimates(quality, duration):
    assert engine.price(quality, duration) == EXPECTED[(quality, duration)]


def test_an_unknown_choice_has_no_price():
    with pytest.raises(KeyError):
        MODEL.cost({"quality": "ultra", "duration": "5", "aspect_ratio": "16:9"})


@pytest.mark.parametrize(
    ("micro_cents", "shown"),
    [
        (225_000, "$0.225"),
        (337_500, "$0.3375"),
        (675_000, "$0.675"),
        (450_000, "$0.45"),
        (2_250_000, "$2.25"),
        (0, "$0.00"),
        (1, "$0.000001"),
        (1_000_000, "$1.00"),
        (1_234_567_890, "$1,234.56789"),
        (-225_000, "-$0.225"),
    ],
)
def test_dollars_are_shown_without_losing_precision(micro_cents, shown):
    assert pricing.format_dollars(micro_cents) == shown


def test_micro_cents_are_grouped():
    assert pricing.format_micro_cents(337_500) == "337,500 µ¢"


def test_rounding_is_half_up_on_exact_fractions():
    assert pricing.round_half_up(Fraction(5, 2)) == 3
    assert pricing.round_half_up(Fraction(7, 3)) == 2
    assert pricing.round_half_up(Fraction(-5, 2)) == -3


def test_dollars_convert_to_micro_cents_exactly():
    assert pricing.dollars_to_micro_cents(Decimal("0.3375")) == 337_500
    assert pricing.dollars_to_micro_cents(Decimal("10")) == 10_000_000


def test_the_browser_catalog_carries_the_rule_not_a_price_table():
    catalog = pricing.catalog_for_browser()
    assert catalog["slug"] == "kling/kling-text2video-v25/text-to-video"
    assert catalog["baseMicroCents"] == 45_000
    assert catalog["factors"]["quality"]["pro"] == {"n": 3, "d": 2, "note": "1.5 (Pro)"}
    assert catalog["factors"]["duration"]["10"]["n"] == 10
    assert set(catalog["factors"]["aspect_ratio"]) == {"16:9", "9:16", "1:1"}
