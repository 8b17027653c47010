"""Support-ticket routing: category, priority 1-5, a short summary."""

from typing import Literal

from pydantic import BaseModel, Field


class SupportTicket(BaseModel):
    """Read the customer's support message. Choose the team that should handle it, rate its
    priority from 1 (can wait) to 5 (service down or money at risk), and summarise it in one sentence."""

    category: Literal["billing", "technical", "account", "shipping", "other"] = Field(
        description="the team that should handle the ticket")
    priority: int = Field(ge=1, le=5, description="1 = can wait, 5 = outage or money at risk")
    summary: str = Field(max_length=160, description="one sentence, at most 160 characters")


EXAMPLES = [
    ("I was charged twice for my March invoice, please refund one of the payments.",
     {"category": "billing", "priority": 4, "summary": "Customer was double-charged for the March invoice."}),
]
