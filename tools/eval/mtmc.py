"""Multi-camera tracking: cameras.json, floor projection, fusion drivers and multi-view scores.

The views of a group are scored as one sequence (every (view, frame) its own frame, views one
after the other) with global ids, so a person called differently in two views is penalised:
IDF1 / MOTA (py-motmetrics) and HOTA (TrackEval's, ``tools.eval.mot``). The cross-view score
is the share of ground-truth person-frames seen in two or more views whose matches in all of
them carry one id. Beside the hub's fusion (``tools.hub.fusion``) run the same way a unit's
tracks reach it, two references: per-view ids only, and an anchor fusion by position
clustering (gated Hungarian on foot points, local tracks never split, co-moving merge).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

from tools.eval.mot import box_iou_xywh, evaluate
from tools.hub.fusion import Fusion, FusionConfig, Observation

VIEW_ID_STRIDE = 100_000  # per-view ids of the baseline: view index * stride + local id


@dataclass
class Camera:
    """One view: image size (px) and the image->floor homography in metres (None: uncalibrated)."""

    name: str
    image_size: tuple[int, int]
    homography: np.ndarray | None


@dataclass
class Cameras:
    """A group's cameras.json: frame rate and views."""

    frame_rate: float
    views: dict[str, Camera]


def load_cameras(path: str | Path) -> Cameras:
    """Read and check a cameras.json (frame_rate, ground_unit_m, views.<v>.image_size/homography)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file (cameras.json)") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: top level must be an object")

    def positive(key: str, default: float | None = None) -> float:
        v = doc.get(key, default)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"{path}: {key} must be a positive number, got {v!r}")
        return float(v)

    fps = positive("frame_rate")
    unit_m = positive("ground_unit_m", 1.0)
    views = doc.get("views")
    if not isinstance(views, dict) or not views:
        raise ValueError(f"{path}: views must be a non-empty object")
    out = {}
    for name, v in views.items():
        where = f"{path}: views.{name}"
        if not isinstance(v, dict):
            raise ValueError(f"{where} must be an object")
        size = v.get("image_size")
        if (
            not isinstance(size, list)
            or len(size) != 2
            or not all(isinstance(s, int) and s > 0 for s in size)
        ):
            raise ValueError(f"{where}.image_size must be [width, height] in pixels, got {size!r}")
        h = v.get("homography")
        if h is not None:
            try:
                h = np.asarray(h, np.float64)
            except (TypeError, ValueError):
                raise ValueError(f"{where}.homography must be a 3x3 matrix of numbers") from None
            if h.shape != (3, 3) or not np.isfinite(h).all():
                raise ValueError(f"{where}.homography must be a finite 3x3 matrix or null")
            sv = np.linalg.svd(h, compute_uv=False)
            if sv[-1] <= 1e-12 * sv[0]:
                raise ValueError(f"{where}.homography is singular")
            h = np.diag([unit_m, unit_m, 1.0]) @ h
        out[name] = Camera(name, (size[0], size[1]), h)
    return Cameras(fps, out)


def foot_points(rows: np.ndarray) -> np.ndarray:
    """Bottom-centre (u, v) pixels of MOT rows (x, y, w, h), as the zones use."""
    return np.column_stack([rows[:, 2] + rows[:, 4] / 2, rows[:, 3] + rows[:, 5]])


def to_floor(h: np.ndarray | None, uv: np.ndarray) -> np.ndarray:
    """Image points -> floor metres through ``h``; NaN where uncalibrated or behind the horizon."""
    if h is None:
        return np.full((uv.shape[0], 2), np.nan)
    p = np.column_stack([uv, np.ones(uv.shape[0])]) @ h.T
    w = p[:, 2:3]
    with np.errstate(divide="ignore", invalid="ignore"):
        xy = p[:, :2] / w
    xy[~(np.abs(w[:, 0]) > 1e-12)] = np.nan
    return xy


def split_frames(rows: np.ndarray, num_frames: int) -> list[np.ndarray]:
    """MOT rows grouped by frame 1..num_frames."""
    f = rows[:, 0].astype(np.int64)
    order = np.argsort(f, kind="stable")
    rows, f = rows[order], f[order]
    b = np.searchsorted(f, np.arange(1, num_frames + 2))
    return [rows[b[t] : b[t + 1]] for t in range(num_frames)]


def num_frames_of(tracks: dict[str, np.ndarray]) -> int:
    return int(max((r[:, 0].max() for r in tracks.values() if r.size), default=0))


# ----------------------------------------------------------------------------- fusions
def fuse_hub(
    cams: Cameras,
    tracks: dict[str, np.ndarray],
    config: FusionConfig | None = None,
    clock_offsets: dict[str, float] | None = None,
) -> dict[str, np.ndarray]:
    """The hub's fusion fed as the units would feed it (a unit-frame per view and frame, in
    time order, stepped at each frame): per view the rows with global ids."""
    fusion = Fusion(config)
    n = num_frames_of(tracks)
    offs = clock_offsets or {}
    per_view = {v: split_frames(r, n) for v, r in tracks.items()}
    xy = {v: to_floor(cams.views[v].homography, foot_points(r)) for v, r in tracks.items()}
    # floor points in the per-frame order of split_frames
    xy_frames = {v: split_frames(np.column_stack([r, xy[v]]), n) for v, r in tracks.items()}
    gid: dict[tuple[str, int, int], int] = {}
    lead = max(offs.values(), default=0.0)
    for t in range(n):
        for v in tracks:
            rows = per_view[v][t]
            if rows.size:
                fusion.add(
                    Observation(
                        v,
                        t / cams.frame_rate + offs.get(v, 0.0),
                        t + 1,
                        rows[:, 1].astype(np.int64),
                        xy_frames[v][t][:, 10:12],
                    )
                )
        for a in fusion.step(t / cams.frame_rate + lead):
            gid[(a.unit, a.frame, a.local_id)] = a.global_id
    for a in fusion.flush():
        gid[(a.unit, a.frame, a.local_id)] = a.global_id
    out = {}
    for v, r in tracks.items():
        ids = [gid[(v, int(f), int(i))] for f, i in r[:, :2]]
        out[v] = np.column_stack([r[:, 0], ids, r[:, 2:]])
    return out


def fuse_none(tracks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """No fusion: each view's local ids, kept apart (the baseline)."""
    return {
        v: np.column_stack([r[:, 0], (k + 1) * VIEW_ID_STRIDE + r[:, 1], r[:, 2:]])
        for k, (v, r) in enumerate(tracks.items())
    }


def fuse_anchor(
    cams: Cameras,
    tracks: dict[str, np.ndarray],
    gate_m: float = 3.0,
    merge_m: float = 0.9,
    merge_s: float = 1.0,
    active_s: float = 1.0,
) -> dict[str, np.ndarray]:
    """Position-clustering anchor, online (the issue's reference): every frame, each view's
    foot points are matched one-to-one to the live global tracks by gated Hungarian on floor
    distance (``gate_m``; a local track's previous global id gets a credit of half the gate,
    as any tracker's continuity term), unmatched points start global tracks, a track's
    position is the mean of its points that frame; two global tracks co-moving within
    ``merge_m`` for ``merge_s`` with no view seeing both are merged (the younger into the
    older). Local tracks are re-matched every frame, so the anchor can split them too.
    Uncalibrated views keep their own ids."""
    n = num_frames_of(tracks)
    views = list(tracks)
    frames = {
        v: split_frames(np.column_stack([r, to_floor(cams.views[v].homography, foot_points(r))]), n)
        for v, r in tracks.items()
    }
    win = active_s * cams.frame_rate
    link: dict[tuple[str, int], int] = {}  # (view, local id) -> global id it had last frame
    pos: dict[int, np.ndarray] = {}  # gid -> floor position
    last: dict[int, int] = {}  # gid -> last frame seen
    seen: dict[int, dict[str, int]] = {}  # gid -> view -> last frame that view saw it
    together: dict[tuple[int, int], int] = {}
    ids = iter(range(1, 1 << 62))
    out_ids: dict[tuple[str, int, int], int] = {}
    for t in range(1, n + 1):
        pts: dict[int, list[np.ndarray]] = {}
        for k, v in enumerate(views):
            rows = frames[v][t - 1]
            if not len(rows):
                continue
            lids = rows[:, 1].astype(np.int64)
            z = rows[:, 10:12]
            placed = np.isfinite(z).all(axis=1)
            for i in np.flatnonzero(~placed):
                out_ids[(v, t, int(lids[i]))] = VIEW_ID_STRIDE * (k + 1) + int(lids[i])
            idx = np.flatnonzero(placed)
            if not idx.size:
                continue
            cands = [g for g in pos if t - last[g] <= win]
            match: dict[int, int] = {}
            if cands:
                p = np.array(
                    [np.mean(pts[g], axis=0) if g in pts else pos[g] for g in cands]
                ).reshape(-1, 2)
                d = np.linalg.norm(z[idx][:, None] - p[None], axis=2)
                prev = np.array([link.get((v, int(lids[i])), 0) for i in idx])
                credit = (prev[:, None] == np.array(cands)[None]) * (gate_m / 2)
                cost = np.where(d <= gate_m, d - credit, 1e6)
                rr, cc = linear_sum_assignment(cost)
                match = {int(r): cands[c] for r, c in zip(rr, cc, strict=True) if cost[r, c] < 1e6}
            for j, i in enumerate(idx):
                g = match.get(j)
                if g is None:
                    g = next(ids)
                    pos[g], last[g] = z[i], t
                pts.setdefault(g, []).append(z[i])
                seen.setdefault(g, {})[v] = t
                link[(v, int(lids[i]))] = g
                out_ids[(v, t, int(lids[i]))] = g
        for g, zs in pts.items():
            pos[g], last[g] = np.mean(zs, axis=0), t
        live = sorted(pts)
        for i, a in enumerate(live):
            for b in live[i + 1 :]:
                if a not in pos or b not in pos:
                    continue
                key = (a, b)
                both = any(seen[b].get(vv, -1) == ft for vv, ft in seen[a].items() if ft == t)
                if both or np.linalg.norm(pos[a] - pos[b]) > merge_m:
                    together.pop(key, None)
                    continue
                since = together.setdefault(key, t)
                if t - since >= merge_s * cams.frame_rate:
                    for kk, gg in link.items():
                        if gg == b:
                            link[kk] = a
                    for vv, ft in seen[b].items():
                        seen[a][vv] = max(ft, seen[a].get(vv, -1))
                    del pos[b], last[b]
                    together.pop(key, None)
        for g in [g for g, ft in last.items() if t - ft > 10 * win]:
            del pos[g], last[g]
    return {
        v: np.column_stack([r[:, 0], [out_ids[(v, int(f), int(i))] for f, i in r[:, :2]], r[:, 2:]])
        for v, r in tracks.items()
    }


# ----------------------------------------------------------------------------- scores
def concat_views(per_view: dict[str, np.ndarray], views: list[str], n: int) -> np.ndarray:
    """Views one after the other: view k's frame f becomes frame k * n + f."""
    parts = []
    for k, v in enumerate(views):
        r = per_view.get(v, np.zeros((0, 10))).copy()
        r[:, 0] += k * n
        parts.append(r)
    return np.concatenate(parts) if parts else np.zeros((0, 10))


def cross_view_score(
    gt: dict[str, np.ndarray], res: dict[str, np.ndarray], n: int
) -> tuple[int, int]:
    """(good, total): gt person-frames seen in >= 2 views, and those whose matches
    (IoU >= 0.5) in all of them carry one id."""
    matched: dict[tuple[int, int], list[int | None]] = {}
    for v, g in gt.items():
        gf, rf = split_frames(g, n), split_frames(res.get(v, np.zeros((0, 10))), n)
        for t in range(n):
            a, b = gf[t], rf[t]
            ids: list[int | None] = [None] * len(a)
            if len(a) and len(b):
                iou = box_iou_xywh(a[:, 2:6], b[:, 2:6])
                rr, cc = linear_sum_assignment(-iou)
                for r, c in zip(rr, cc, strict=True):
                    if iou[r, c] >= 0.5:
                        ids[r] = int(b[c, 1])
            for k in range(len(a)):
                matched.setdefault((t, int(a[k, 1])), []).append(ids[k])
    multi = [m for m in matched.values() if len(m) >= 2]
    good = sum(1 for m in multi if None not in m and len(set(m)) == 1)
    return good, len(multi)


def score_groups(
    groups: dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]],
) -> dict[str, dict]:
    """{group: (gt per view, results per view)} -> metrics per group and COMBINED (+ 'XV')."""
    seqs, xv = {}, {}
    for name, (gt, res) in groups.items():
        views = sorted(gt)
        n = max(num_frames_of(gt), num_frames_of(res))
        seqs[name] = (concat_views(gt, views, n), concat_views(res, views, n), n * len(views))
        xv[name] = cross_view_score(gt, res, n)
    out = evaluate(seqs)
    tot = [sum(x) for x in zip(*xv.values(), strict=True)]
    for name, (good, total) in [*xv.items(), ("COMBINED", tot)]:
        out[name]["XV"] = good / total if total else float("nan")
    return out
