"""Till journal parsing: raw POS lines -> transactions, cashier ids pseudonymised at once.

Two built-in formats (docs/inputs.md) and configurable patterns. A line that matches no
pattern is counted and logged with its text; it never stops the unit.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from firmware.inputs.config import TillConfig, TillPattern
from firmware.inputs.records import TillTransaction

log = logging.getLogger(__name__)

# 'vigil' format: one transaction a line, key=value fields after the kind, in any order:
#   2026-12-02T10:15:03 REFUND till=2 amount=12.50 cashier=1042
_KV = r"(?=.*\btill=(?P<till>[\w-]+))?(?=.*\bamount=(?P<amount>-?\d+(?:[.,]\d+)?))?(?=.*\bcashier=(?P<cashier>[\w-]+))?"
VIGIL_FORMAT = [
    TillPattern(kind=kind, regex=rf"^(?:\S+\s+)?{word}\b{_KV}")
    for kind, word in (
        ("no_sale", "NO_SALE"),
        ("sale", "SALE"),
        ("refund", "REFUND"),
        ("void", "VOID"),
        ("price_override", "PRICE_OVERRIDE"),
    )
]

# 'receipt' format: the text journal a receipt printer copy or an ESC/POS tap gives, one
# header per receipt naming till and operator, then item and total lines:
#   TILL 02   OP 1042   02/12/2026 10:15
#   *** REFUND ***            -12.50
#   NO SALE
#   VOID  MILK 2L              1.19
#   PRICE OVERRIDE  4.99 -> 2.99
#   TOTAL                     15.40
_AMT = r"(?P<amount>-?\d+[.,]\d{2})"
RECEIPT_FORMAT = [
    TillPattern(
        kind="context",
        regex=r"^\s*(?:TILL|REG(?:ISTER)?|POS)\s*#?\s*(?P<till>\w+)\s+(?:OP(?:ERATOR)?|CASHIER|CLERK)\s*#?\s*(?P<cashier>\w+)",
    ),
    TillPattern(kind="refund", regex=rf"^\W*REFUND\b.*?{_AMT}?\s*$"),
    TillPattern(kind="no_sale", regex=r"^\W*NO\s*SALE\b"),
    TillPattern(kind="void", regex=rf"^\W*VOID\b.*?{_AMT}?\s*$"),
    TillPattern(kind="price_override", regex=rf"^\W*PRICE\s+OVERRIDE\b.*?{_AMT}?\s*$"),
    TillPattern(kind="sale", regex=rf"^\W*TOTAL\b.*?{_AMT}\s*$"),
]
# A receipt is mostly free text (store name, items, totals, footers): any printable line that
# is not a transaction is expected; lines with control bytes or replacement characters (line
# noise, a wrong baud rate, raw ESC/POS commands) are counted as not understood.
RECEIPT_NOISE = re.compile(r"^[^\x00-\x08\x0b-\x1f\x7f\ufffd]*$")


class Pseudonymiser:
    """Keyed hash of a cashier id (HMAC-SHA256 with the site secret, 12 hex digits): the same
    cashier gets the same pseudonym at a site, and the id cannot be read back without the secret."""

    def __init__(self, secret: bytes):
        if len(secret) < 16:
            raise ValueError("the till secret must be at least 16 bytes")
        self._secret = secret

    def __call__(self, cashier: str) -> str:
        return hmac.new(self._secret, cashier.encode(), hashlib.sha256).hexdigest()[:12]

    @classmethod
    def from_file(cls, path: Path, create: bool = False) -> Pseudonymiser:
        """Read the secret; with ``create`` make a new random one (mode 0600) if absent."""
        if create and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(32))
        if not path.is_file():
            raise ValueError(f"till secret {path} is not a regular file")
        data = path.read_bytes()
        if len(data) < 16 or not data.strip(b"\0"):
            raise ValueError(f"till secret {path} is shorter than 16 bytes or all zeros")
        return cls(data)


@dataclass
class TillParser:
    """Lines in, transactions out; keeps the header context of the receipt format."""

    input: str
    patterns: list[TillPattern]
    pseudonymise: Pseudonymiser
    noise: re.Pattern[str] | None = None
    unparsed: int = 0
    parsed: int = 0
    _compiled: list[tuple[str, re.Pattern[str]]] = field(init=False, repr=False)
    _context: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self._compiled = [(p.kind, re.compile(p.regex, re.IGNORECASE)) for p in self.patterns]

    @classmethod
    def for_config(
        cls, cfg: TillConfig, pseudonymise: Pseudonymiser, name: str = "till"
    ) -> TillParser:
        if cfg.patterns:
            return cls(name, list(cfg.patterns), pseudonymise)
        if cfg.format == "receipt":
            return cls(name, RECEIPT_FORMAT, pseudonymise, RECEIPT_NOISE)
        return cls(name, VIGIL_FORMAT, pseudonymise)

    def parse(self, line: str, t: float) -> TillTransaction | None:
        """The transaction on this line, or None (a header, noise, or an unparsed line)."""
        text = line.rstrip("\r\n")
        for kind, rx in self._compiled:
            m = rx.search(text)
            if m is None:
                continue
            groups = {k: v for k, v in m.groupdict().items() if v is not None}
            if kind == "context":
                self._context = groups
                return None
            fields = {**self._context, **groups}
            self.parsed += 1
            cashier = fields.get("cashier")
            amount = fields.get("amount")
            return TillTransaction(
                t=t,
                input=self.input,
                kind=kind,  # type: ignore[arg-type]
                till=fields.get("till"),
                amount=float(amount.replace(",", ".")) if amount else None,
                cashier=self.pseudonymise(cashier) if cashier else None,
            )
        if self.noise is not None and self.noise.search(text):
            return None
        self.unparsed += 1
        log.warning(
            "till %s: line %d not understood, skipped: %r", self.input, self.unparsed, text[:200]
        )
        return None
