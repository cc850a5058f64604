"""A tiny real file system for disk-full tests: a tmpfs of a few KiB mounted in the test's
folder (needs root, as in CI; the tests skip cleanly where mounting is not allowed)."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_fs(where: Path, size_kb: int = 256, fill: bool = False) -> Iterator[Path]:
    """Mount a ``size_kb`` tmpfs at ``where``; with ``fill``, leave it 100% full."""
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_kb}k,mode=0777", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.strip()}")
    try:
        if fill:
            fill_up(where)
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill_up(where: Path) -> None:
    """Write until the file system has no byte left (big blocks, then single bytes)."""
    fd = os.open(where / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for block in (65536, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * block)
            except OSError:
                pass
    finally:
        os.close(fd)
