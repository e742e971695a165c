import pytest

from jobs.forms import JobForm

from .helpers import form_data


def errors_for(**overrides):
    form = JobForm(form_data(**overrides))
    assert not form.is_valid()
    return form.errors


def test_a_complete_form_gives_the_api_input_with_strings_for_choices():
    form = JobForm(form_data(quality="pro", duration="10", aspect_ratio="9:16", seed="42"))
    assert form.is_valid(), form.errors
    assert form.params() == {
        "prompt": "A lighthouse on a cliff at dusk, waves crashing, slow aerial orbit",
        "quality": "pro",
        "duration": "10",
        "aspect_ratio": "9:16",
        "seed": 42,
    }
    assert form.model.cost(form.params()) == 675_000


def test_an_empty_seed_is_left_out_so_the_api_picks_one():
    form = JobForm(form_data(seed=""))
    assert form.is_valid()
    assert "seed" not in form.params()


def test_seed_zero_is_a_real_seed():
    form = JobForm(form_data(seed="0"))
    assert form.is_valid()
    assert form.params()["seed"] == 0


def test_an_unknown_quality_is_refused_with_the_allowed_values():
    assert "Choose one of: std, pro." in errors_for(quality="ultra")["quality"][0]


def test_a_seven_second_duration_is_refused():
    assert "not an allowed duration" in errors_for(duration="7")["duration"][0]


def test_an_unknown_aspect_ratio_is_refused():
    assert "aspect ratio" in errors_for(aspect_ratio="4:3")["aspect_ratio"][0]


@pytest.mark.parametrize("prompt", ["", "   \n\t "])
def test_an_empty_prompt_is_refused(prompt):
    assert errors_for(prompt=prompt)["prompt"] == ["Write a prompt: describe the video you want."]


def test_a_prompt_over_2500_characters_is_refused_with_its_length():
    message = errors_for(prompt="a" * 2501)["prompt"][0]
    assert "2501" in message and "2500" in message


def test_a_prompt_of_exactly_2500_characters_is_accepted():
    assert JobForm(form_data(prompt="é" * 2500)).is_valid()


def test_a_prompt_with_a_null_character_is_refused():
    assert "prompt" in errors_for(prompt="sunset\x00")


@pytest.mark.parametrize(
    ("seed", "message"),
    [
        ("abc", "The seed must be a whole number."),
        ("4.5", "The seed must be a whole number."),
        ("-1", "The seed must be at least 0."),
        ("2147483648", "The seed must be at most 2147483647."),
        ("9" * 40, "The seed must be at most 2147483647."),
    ],
)
def test_a_bad_seed_is_refused_with_a_clear_message(seed, message):
    assert errors_for(seed=seed)["seed"] == [message]


def test_a_missing_submission_key_says_the_form_expired():
    assert "expired" in errors_for(submission_key="")["submission_key"][0]


def test_missing_choices_are_reported_per_field():
    data = form_data()
    for name in ("quality", "duration", "aspect_ratio"):
        del data[name]
    errors = JobForm(data).errors
    assert errors["quality"] == ["Choose the quality."]
    assert errors["duration"] == ["Choose the duration."]
    assert errors["aspect_ratio"] == ["Choose the aspect ratio."]


def test_the_form_shows_the_price_of_what_was_typed():
    assert JobForm(form_data(quality="pro", duration="5")).shown_cost() == 337_500
    assert JobForm().shown_cost() == 225_000
    assert JobForm(form_data(quality="bogus", duration="10")).shown_cost() == 450_000


def test_line_breaks_count_once_as_the_browser_counts_them():
    prompt = ("x" * 248 + "\r\n") * 10  # 2,490 characters in the browser, 2,500 as CRLF
    form = JobForm(form_data(prompt=prompt))
    assert form.is_valid(), form.errors
    assert "\r" not in form.params()["prompt"]
    assert len(form.params()["prompt"]) == 2490 - 1  # the trailing line break is stripped
