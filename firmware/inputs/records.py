"""Plain records from store systems: what changed, when (seconds on the frame clock), where."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ContactKind = Literal["eas_gate", "door", "fire_exit", "panic"]
TransactionKind = Literal["sale", "refund", "void", "no_sale", "price_override"]
TRANSACTION_KINDS: tuple[str, ...] = ("sale", "refund", "void", "no_sale", "price_override")


@dataclass(frozen=True, slots=True)
class ContactChange:
    """A debounced state change of a dry-contact input."""

    t: float
    input: str
    kind: ContactKind
    zone: str | None
    active: bool


@dataclass(frozen=True, slots=True)
class TillTransaction:
    """One parsed till transaction; ``cashier`` is already a pseudonym (never the raw id)."""

    t: float
    input: str
    kind: TransactionKind
    till: str | None = None
    amount: float | None = None
    cashier: str | None = None


@dataclass(frozen=True, slots=True)
class InputFault:
    """An input misbehaving (a chattering contact, a till stream that cannot be read)."""

    t: float
    input: str
    code: str  # input_chatter, input_recovered, till_unreadable, till_unparsed
    detail: str


InputRecord = ContactChange | TillTransaction | InputFault
