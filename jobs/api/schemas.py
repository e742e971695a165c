"""The shapes the API reads and writes, from which ninja writes the OpenAPI document.

The request body only checks JSON types (a prompt must be a string, a seed an integer);
what values are allowed is the catalog's and the form's business (``forms.ApiJobForm``),
so a script and a person are told the same thing in the same words. The catalog's limits
are copied into the schema's documentation (enum, maxLength) for readers and generators.
"""

from datetime import date, datetime
from typing import Any, Literal

from ninja import Field, Schema
from pydantic import StrictInt, StrictStr

from .. import pricing
from ..models import ArchiveStatus, Status, TokenScope

MODEL = pricing.DEFAULT_MODEL
MAX_IDEMPOTENCY_KEY = 255


def _documented(name, **extra):
    """A body field documented from the catalog input ``name`` (validated by the form)."""
    spec = MODEL.input(name)
    schema = {"description": spec.help_text or spec.label, **extra}
    if spec.choices:
        schema["enum"] = [choice.value for choice in spec.choices]
    if spec.max_length:
        schema["maxLength"] = spec.max_length
    if spec.min_value is not None:
        schema.update(minimum=spec.min_value, maximum=spec.max_value)
    return Field(... if spec.required else None, json_schema_extra=schema)


class JobIn(Schema):
    """A video to make: the page's form, as JSON."""

    prompt: StrictStr = _documented("prompt")
    quality: StrictStr = _documented("quality")
    duration: StrictInt | StrictStr = _documented(
        "duration", enum=[int(c.value) for c in MODEL.input("duration").choices]
    )
    aspect_ratio: StrictStr = _documented("aspect_ratio")
    seed: StrictInt | None = _documented("seed")
    project: StrictStr = Field("", description="Optional: a client or campaign to charge this video to.")
    webhook_url: StrictStr = Field(
        "",
        description="Optional: where the studio POSTs the job's JSON when it ends (https; plain http "
        "on loopback in sandbox mode), signed with the token's webhook secret (Standard Webhooks).",
    )


# --- answers --------------------------------------------------------------------------------


class Money(Schema):
    micro_cents: int = Field(description="Integer micro-cents: 1,000,000 = US$1.00.")
    dollars: str = Field(description='The same amount in US dollars, exact, as a string ("0.225").')


class ErrorBody(Schema):
    code: str = Field(description="Stable, for scripts: see the README's table.")
    message: str = Field(description="For people: what happened and what to do.")
    fields: dict[str, list[str]] | None = Field(None, description="422 only: the messages for each field.")


class Error(Schema):
    error: ErrorBody


class Options(Schema):
    quality: str
    duration: int
    aspect_ratio: str
    seed: int | None


class JobError(Schema):
    code: str
    message: str


class TokenName(Schema):
    name: str
    prefix: str


class Approval(Schema):
    reason: str
    explanation: str
    decision: Literal["waiting", "approved", "declined", "expired"]
    approvers: list[str] = Field(description="Who may approve: the team's managers (none: staff).")
    requested_at: datetime
    expires_at: datetime
    decided_at: datetime | None
    note: str


class Callback(Schema):
    url: str
    attempts: list[dict[str, Any]] | None = Field(
        description="Each delivery attempt, oldest first (null in a list: ask the job itself)."
    )


class Links(Schema):
    self: str = Field(description="This job in the API.")
    page: str = Field(description="This job's page in the studio.")
    video: str | None = Field(description="The studio's copy of the video (accepts the same token).")
    thumbnail: str | None
    poster: str | None


class Job(Schema):
    id: int
    status: Literal[tuple(Status.values)]
    status_label: str
    finished: bool = Field(
        description="The status is final (completed, failed, cancelled, refused, declined)."
    )
    progress: int
    model: str
    prompt: str
    options: Options
    project: str
    estimate: Money
    charged: bool = Field(description="Whether the job counts against the budgets (not when refunded).")
    charge: Money = Field(description="What it costs the team: PixelByte's charge, else the estimate.")
    refunded: Money
    error: JobError | None
    sent_with: TokenName | None = Field(description="The API token it was sent with (null: the page).")
    created_at: datetime
    submitted_at: datetime | None
    started_at: datetime | None
    completed_at: datetime | None
    estimated_completion_at: datetime | None
    archive_status: Literal[tuple(value or "none" for value in ArchiveStatus.values)] = Field(
        description="The studio's own copy of the outputs: queued while it is being made."
    )
    approval: Approval | None
    callback: Callback | None
    links: Links


class JobPage(Schema):
    jobs: list[Job]
    next_cursor: str | None = Field(description="Pass as ?after= for the next (older) page; null at the end.")
    next: str | None = Field(description="The next page's URL, filters kept.")


class Budget(Schema):
    kind: Literal["token", "user", "team"]
    name: str
    limit: Money = Field(description="This month's limit: the budget and this month's raises.")
    spent: Money
    left: Money
    raised: Money
    period_start: datetime
    resets_at: datetime
    resets_on: date = Field(description="The day it starts again, in its holder's time zone.")


class BudgetOverrun(ErrorBody):
    budget: Budget = Field(description="The budget that does not fit.")
    cost: Money
    over_by: Money


class BudgetError(Schema):
    error: BudgetOverrun


class BudgetCheck(Budget):
    fits: bool
    left_after: Money


class NeedsApproval(Schema):
    reason: str
    explanation: str
    approvers: list[str]


class Estimate(Schema):
    estimate: Money
    outcome: Literal["send", "approval", "refused"] = Field(
        description="What a submit would do now: be sent, wait for a manager, or be refused (402)."
    )
    message: str
    budgets: list[BudgetCheck]
    approval: NeedsApproval | None


class Person(Schema):
    username: str
    name: str
    email: str


class Team(Schema):
    id: int
    name: str


class Token(Schema):
    name: str
    prefix: str
    scopes: list[Literal[tuple(TokenScope.values)]]
    created_at: datetime
    expires_at: datetime | None
    monthly_budget: Money | None


class ApprovalRule(Schema):
    above: Money | None = Field(description="A job costing more waits for a manager's approval.")
    may_ask: bool = Field(description="A job past a budget asks a manager instead of being refused.")
    approvers: list[str]


class Me(Schema):
    user: Person
    team: Team | None
    role: Literal["member", "manager"] | None
    is_staff: bool
    token: Token
    budgets: list[Budget] = Field(description="Every budget that applies to this token's jobs.")
    approval_rule: ApprovalRule | None


# Every error a route may answer, for the document.
AUTH_ERRORS = {401: Error, 403: Error, 429: Error}
