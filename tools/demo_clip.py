"""Rebuilds firmware/demo/vtest-30s.mp4 from Debian's opencv-doc package (see firmware/demo/README.md)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import cv2

OUT = Path(__file__).resolve().parents[1] / "firmware" / "demo" / "vtest-30s.mp4"


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", "opencv-doc"], cwd=tmp, check=True)
        deb = next(Path(tmp).glob("opencv-doc_*.deb"))
        subprocess.run(["dpkg", "-x", str(deb), f"{tmp}/x"], check=True)
        src = Path(tmp) / "x/usr/share/doc/opencv-doc/examples/data/vtest.avi"
        cap = cv2.VideoCapture(str(src))
        out = cv2.VideoWriter(str(OUT), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (640, 480))
        for _ in range(300):
            ok, frame = cap.read()
            if not ok:
                break
            out.write(cv2.resize(frame, (640, 480), interpolation=cv2.INTER_AREA))
        out.release()
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
