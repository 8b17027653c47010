"""Invoice extraction: vendor, dates, nested line items, amounts."""

from datetime import date

from pydantic import BaseModel, Field


class LineItem(BaseModel):
    description: str = Field(max_length=120)
    quantity: float = Field(gt=0)
    unit_price: float = Field(ge=0, description="price of one unit, in the invoice currency")
    amount: float = Field(ge=0, description="quantity times unit price")


class Invoice(BaseModel):
    """Extract the invoice's vendor, number, dates, currency, line items and total from the text."""

    vendor: str = Field(max_length=100)
    invoice_number: str = Field(max_length=40)
    issue_date: date = Field(description="ISO date, YYYY-MM-DD")
    due_date: date | None = Field(default=None, description="ISO date, or null if not stated")
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code such as EUR or USD")
    line_items: list[LineItem] = Field(min_length=1, max_length=20)
    total: float = Field(ge=0)
