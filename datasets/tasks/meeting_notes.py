"""Meeting notes: decisions and action items with owner and due date."""

from datetime import date

from pydantic import BaseModel, Field


class ActionItem(BaseModel):
    task: str = Field(max_length=140, description="what must be done")
    owner: str = Field(max_length=60, description="the person responsible")
    due: date | None = Field(default=None, description="ISO date if one was agreed, else null")


class MeetingNotes(BaseModel):
    """Extract the meeting's title, the decisions taken, and every action item with its owner and due date."""

    title: str = Field(max_length=100)
    decisions: list[str] = Field(max_length=10, description="each decision in one sentence")
    action_items: list[ActionItem] = Field(max_length=15)
