"""All store-system inputs of a unit behind one call the frame loop makes per frame."""

from __future__ import annotations

import dataclasses
import queue
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from firmware.inputs.config import ContactInputConfig, TillConfig
from firmware.inputs.contacts import ContactInputs
from firmware.inputs.journal import LineStream, TillReader, open_stream
from firmware.inputs.records import InputRecord
from firmware.inputs.till import Pseudonymiser, TillParser


class StoreInputs:
    """Contact inputs and the till journal; :meth:`drain` hands the loop what arrived since
    the last frame, re-stamped from the monotonic clock to the frame clock."""

    def __init__(
        self,
        contacts: dict[str, ContactInputConfig],
        till: TillConfig | None,
        *,
        secret_path: Path | None = None,
        pin_factory: Any = None,
        opener: Callable[[str, int], LineStream] = open_stream,
        clock: Callable[[], float] = time.monotonic,
    ):
        self._clock = clock
        self._queue: queue.Queue[InputRecord] = queue.Queue(maxsize=10_000)
        self.contacts = ContactInputs(contacts, pin_factory, clock)
        self.till: TillReader | None = None
        try:
            if till is not None:
                if secret_path is None:
                    raise ValueError("a till needs a secret file for cashier pseudonyms")
                pseud = Pseudonymiser.from_file(secret_path, create=till.secret_file is None)
                parser = TillParser.for_config(till, pseud)
                self.till = TillReader(till, parser, self._queue, opener, clock).start()
        except Exception:
            self.contacts.close()
            raise

    def drain(self, frame_t: float) -> list[InputRecord]:
        """Records due by now, their times moved onto the frame clock (``frame_t`` is now)."""
        now = self._clock()
        recs = self.contacts.poll(now)
        while True:
            try:
                recs.append(self._queue.get_nowait())
            except queue.Empty:
                break
        recs.sort(key=lambda r: r.t)
        return [dataclasses.replace(r, t=frame_t - (now - r.t)) for r in recs]

    def close(self) -> None:
        if self.till is not None:
            self.till.stop()
        self.contacts.close()
