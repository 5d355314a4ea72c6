"""The "Add an action" form of a local review and of a learning event: the JSON API's ``ActionIn`` with the form's
wording and the checks a person can fix at once (the owner from the partnership's list, a real date in the future).

``read_form(ActionForm, values, context={"agencies": ..., "today": ...})`` (``web.form_models``) reports every
problem in one round; the workflow's ``add_action`` validator still decides who may add an action and when.
"""

from __future__ import annotations

from datetime import date
from typing import ClassVar

from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from safeguarding.clock import london_today
from web.api.case_models import ActionIn

ACTION_FIELDS = ["owner", "description", "due_date"]
ACTION_ANCHORS = {"due_date": "#due_date-day"}
ACTION_MAX = 2000


class ActionForm(ActionIn):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    field_labels: ClassVar[dict[str, str]] = {
        "owner": "the agency that owns the action", "description": "the description of the action",
        "due_date": "the due date"}
    field_prompts: ClassVar[dict[str, str]] = {
        "owner": "Choose the agency that owns the action", "description": "Enter what must be done",
        "due_date": "Enter the date the action is due"}
    date_titles: ClassVar[dict[str, str]] = {"due_date": "The due date"}

    description: str = Field(min_length=1, max_length=ACTION_MAX, description="What must be done.")
    due_date: date = Field(description="When it is due.")

    @field_validator("owner")
    @classmethod
    def _listed(cls, owner: str, info: ValidationInfo) -> str:
        agencies = (info.context or {}).get("agencies")
        if agencies is not None and owner not in agencies:
            raise ValueError("Choose the agency that owns the action from the list")
        return owner

    @field_validator("due_date")
    @classmethod
    def _in_the_future(cls, due: date, info: ValidationInfo) -> date:
        if due <= (info.context or {}).get("today", london_today()):
            raise ValueError("The due date must be in the future")
        return due
