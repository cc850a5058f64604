"""A hub `config/set` must not cut the hub off: the [link] settings that decide whether the
hub reaches the unit again (broker, topic prefix, TLS files, hub key) are not changed over
the link. The hub cannot check that it would reach the unit after the next start, so these
are changed on the unit itself (a provisioning step)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import serialization

from firmware.link.config import LinkConfig
from firmware.link.signing import load_public_key


def _raw(key: Any) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def keeps_the_link(
    old: LinkConfig, new: LinkConfig, key: Any | None, resolve: Callable[[str], str]
) -> None:
    """ValueError (a `rejected` reply) naming every change of ``new`` that would cut the link:
    no broker, another broker, prefix or TLS file, no hub key or another one (compared by
    the key itself, so the same key under another path is fine)."""
    cut = []
    if new.mqtt is None and old.mqtt is not None:
        cut.append("mqtt would be empty (no broker: the unit would stop talking to the hub)")
    elif new.mqtt != old.mqtt:
        cut.append(f"mqtt would change from {old.mqtt!r} to {new.mqtt!r}")
    for k in ("topic_prefix", "tls_ca", "tls_cert", "tls_key"):
        if getattr(new, k) != getattr(old, k):
            cut.append(f"{k} would change from {getattr(old, k)!r} to {getattr(new, k)!r}")
    if not new.hub_public_key:
        cut.append("hub_public_key would be unset (every later command refused)")
    elif key is not None and new.hub_public_key != old.hub_public_key:
        try:
            same = _raw(load_public_key(resolve(new.hub_public_key))) == _raw(key)
        except (OSError, ValueError) as e:
            cut.append(f"hub_public_key {new.hub_public_key!r} is unusable: {str(e)[:120]}")
        else:
            if not same:
                cut.append(f"hub_public_key {new.hub_public_key!r} is another key")
    if cut:
        raise ValueError(
            "config/set refused: it would cut the hub off at the next start ("
            + "; ".join(cut)
            + "); change [link] on the unit itself (vigil config, re-provisioning)"
        )
