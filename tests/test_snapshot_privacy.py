"""Diagnostics snapshots show the frame the unit stored, with the loop's own masks (the ones
tracks carry through frames without inference), never a fresh anonymisation of the raw frame;
and the unit process cannot be core-dumped (raw frames would be in the dump)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from firmware.config import load
from firmware.diag import Diagnostics
from firmware.diag.snapshot import anonymise
from firmware.privacy import Anonymiser
from firmware.unit import RunOptions, apply_overrides, build_unit
from tests.test_run import demo_site


class LastStored:
    """Keeps what the loop hands its preview writer: the anonymised frames it stores."""

    def __init__(self) -> None:
        self.masked: np.ndarray | None = None
        self.index = -1

    def push_frame(self, frame, masked, dets, tracks) -> None:
        self.masked, self.index = masked.copy(), frame.index

    def close(self) -> None:
        pass


def test_snapshot_is_the_stored_frame_not_a_fresh_anonymisation(tmp_path, mock_pins):
    # every 2nd frame inferred: on the other frames the masks come from the tracks' memory
    extra = "[detector]\nevery_nth_frame = 2\n"
    site = demo_site(tmp_path, extra)
    site.write_text(site.read_text().replace("enabled = false", "enabled = true"))
    loaded = apply_overrides(load(site), RunOptions(mqtt="none"))
    opts = RunOptions(fast=True, max_frames=62, pin_factory=mock_pins, watchdog=False)
    unit = build_unit(loaded, opts)
    assert unit.loop.s.recorder is None  # no key provisioned: nothing recorded, still anonymised
    stored = LastStored()
    unit.loop.s.preview = stored
    unit.run()
    last = unit.loop.s.probe.last_frame()
    assert last.index == stored.index == 61 and last.detections is None  # not inferred
    img, how = anonymise(loaded.config, last)
    assert np.array_equal(img, stored.masked)  # exactly what was stored
    fresh = Anonymiser(loaded.config.privacy).apply(
        last.image, last.detections, last.tracks, last.inference_ok, last.scale_from
    )
    assert not np.array_equal(fresh, stored.masked)  # a fresh anonymiser shows more
    png = Diagnostics(unit.loop.s.probe).handle("snapshot")
    assert png["frame"] == 61 and png["png"].startswith(b"\x89PNG")


def test_snapshot_refused_when_the_unit_anonymises_nothing(tmp_path, mock_pins):
    import pytest

    from firmware.diag import DiagError

    loaded = apply_overrides(load(demo_site(tmp_path)), RunOptions(mqtt="none"))
    unit = build_unit(
        loaded, RunOptions(fast=True, max_frames=5, pin_factory=mock_pins, watchdog=False)
    )
    unit.run()
    assert unit.loop.s.probe.last_frame() is not None
    with pytest.raises(DiagError, match="no anonymised frame"):
        Diagnostics(unit.loop.s.probe).handle("snapshot")


def test_unit_process_is_not_dumpable_and_service_has_no_core_limit():
    from firmware.paths import REPO_ROOT

    code = (
        "import ctypes, resource; from firmware.service import no_core_dumps; no_core_dumps();"
        "libc = ctypes.CDLL(None); print(libc.prctl(3, 0, 0, 0, 0),"
        " resource.getrlimit(resource.RLIMIT_CORE)[0])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "0"]  # PR_GET_DUMPABLE = 0, core limit 0
    unit = (REPO_ROOT / "systemd" / "vigil.service").read_text()
    assert "\nLimitCORE=0\n" in unit
