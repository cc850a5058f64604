"""The store's internal recording system is updated: each case change (opened, updated,
closed) is POSTed as JSON to a configured URL, signed with an HMAC header, in the order the
changes happened, retried with backoff from the database outbox so nothing is lost while
that system is down or the hub restarts (payload: docs/cases.md)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
import urllib.error
import urllib.request

from tools.hub.serve.db import HubDB

log = logging.getLogger("vigil-hub.webhook")
SIGNATURE_HEADER = "X-Vigil-Signature"  # "sha256=" + hex HMAC-SHA256(secret, body)
DELIVERY_HEADER = "X-Vigil-Delivery"  # the outbox id: receivers drop a repeat of one they have


def signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class WebhookSender:
    """Delivers ``webhook_outbox`` rows strictly in id order; a failed delivery blocks the
    ones after it (order matters more than speed) and is retried with doubling waits."""

    def __init__(
        self,
        db: HubDB,
        url: str,
        secret: bytes,
        *,
        timeout_s: float = 10.0,
        first_retry_s: float = 1.0,
        max_retry_s: float = 60.0,
    ):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook url {url!r}: expected http:// or https://")
        if len(secret) < 16:
            raise ValueError("the webhook secret must be at least 16 bytes")
        self.db, self.url, self.secret = db, url, secret
        self.timeout_s, self.first_retry_s, self.max_retry_s = timeout_s, first_retry_s, max_retry_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hub-webhook", daemon=True)
        self.delivered = 0
        self.failures = 0

    def start(self) -> WebhookSender:
        self._thread.start()
        return self

    def notify(self) -> None:
        """Something was queued: look now rather than at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=self.timeout_s + 2)

    def pending(self) -> int:
        return (
            self.db.read()
            .execute("SELECT COUNT(*) FROM webhook_outbox WHERE sent_at IS NULL")
            .fetchone()[0]
        )

    def _run(self) -> None:
        while not self._stop.is_set():
            row = (
                self.db.read()
                .execute(
                    "SELECT id, body, attempts, next_at FROM webhook_outbox WHERE sent_at IS NULL "
                    "ORDER BY id LIMIT 1"
                )
                .fetchone()
            )
            if row is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            wait = row["next_at"] - time.time()
            if wait > 0:
                self._wake.wait(min(wait, 1.0))
                self._wake.clear()
                continue
            self._deliver(row["id"], row["body"].encode(), row["attempts"])

    def _deliver(self, rid: int, body: bytes, attempts: int) -> None:
        req = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                SIGNATURE_HEADER: signature(self.secret, body),
                DELIVERY_HEADER: str(rid),
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                ok = 200 <= resp.status < 300
                error = None if ok else f"HTTP {resp.status}"
        except urllib.error.HTTPError as e:
            ok, error = False, f"HTTP {e.code}"
        except (urllib.error.URLError, OSError, TimeoutError) as e:
            ok, error = False, str(getattr(e, "reason", e))
        now = time.time()
        with self.db.write() as con:
            if ok:
                con.execute(
                    "UPDATE webhook_outbox SET sent_at=?, attempts=? WHERE id=?",
                    (now, attempts + 1, rid),
                )
            else:
                delay = min(self.first_retry_s * 2**attempts, self.max_retry_s)
                con.execute(
                    "UPDATE webhook_outbox SET attempts=?, next_at=?, last_error=? WHERE id=?",
                    (attempts + 1, now + delay, error, rid),
                )
        if ok:
            self.delivered += 1
        else:
            self.failures += 1
            if attempts == 0:
                log.warning("webhook %s: %s; retrying (nothing is dropped)", self.url, error)
