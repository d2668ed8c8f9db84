"""Is a near-duplicate candidate a copy? Decided by geometry, with a pixel fallback.

A perceptual-hash match is a candidate only: studio photos of two different cars in
the same pose share their coarse layout, hence their hash, and even their look (a
correlation of band-passed thumbnails confirmed such pairs as copies on real photos).
A copy (re-encoded, resized, cropped, watermarked, colour-shifted or mirrored) keeps
something two photos never share: the same local details at the same places. So the
two images' ORB keypoints are matched and RANSAC looks for one similarity transform
(shift, scale, rotation) that carries many of them onto each other; the score is the
share of the smaller keypoint set that it carries (of the mirror image, for a pair
whose pHashes say mirrored).
Two cars in the same pose match a few details (a badge, a wheel) that no single
transform lines up with the rest.

Measured on ../shared/fixtures/stanford-makes-19 (bench/audit_copies.py): planted
copies of real photos with each of those changes score 0.39 and above (0.32 with the
photos at 320 px wide), the fixture's own cross-split copies (squeezed to another
aspect ratio, cropped, mirrored) 0.17-0.54; the ~1,450 look-alikes across its splits
within 16 pHash bits 0.10 at most (0.12 at 320 px).

Images with too few keypoints to judge (a tiny thumbnail, a flat colour) are compared
by the old pixel measure instead, and the result says so.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter

from carbrands.data.images import decode_bytes, read_bytes

# -- geometry ---------------------------------------------------------------------
_SIDE = 384           # longest side both images are compared at (keypoints' scale)
_KEYPOINTS = 500      # ORB keypoints per image at most (1000: no better separation, 2x the time)
_RATIO = 0.8          # Lowe's ratio test: a match must be clearly better than the runner-up
_REPROJ = 3.0         # RANSAC: an inlier lands within this many pixels (at _SIDE) of its match
# below this many keypoints the share of inliers is too noisy to trust: 64 keypoints
# at the default 0.15 still needs 10 inliers to fit one transform
MIN_KEYPOINTS = 64

cv2.setNumThreads(1)  # the audit runs one comparison per worker process, on every core already


@dataclass(frozen=True)
class Check:
    """How a candidate pair was judged: method "geometry" (score: inlier share) or
    "pixels" (score: correlation, used when an image has < MIN_KEYPOINTS keypoints);
    keypoints: of each image at the compared scale."""
    method: str
    score: float
    keypoints: tuple[int, int]

    def is_copy(self, min_inlier_share: float, min_similarity: float) -> bool:
        return self.score >= (min_inlier_share if self.method == "geometry" else min_similarity)


def compare(pixels_a: np.ndarray, pixels_b: np.ndarray, mirrored: bool = False) -> Check:
    """Judge two RGB images, b mirrored left-right when `mirrored` (the audit passes
    whether b's mirror image hashes nearer to a). Both are brought to the resolution of
    the smaller (a small copy and its large source then carry the same detail), then to
    _SIDE."""
    if mirrored:
        pixels_b = np.ascontiguousarray(pixels_b[:, ::-1])
    side = min(_SIDE, max(pixels_a.shape[:2]), max(pixels_b.shape[:2]))
    a, b = _features(_grey(pixels_a, side)), _features(_grey(pixels_b, side))
    counts = (len(a[0]), len(b[0]))
    if min(counts) < MIN_KEYPOINTS:
        return Check("pixels", round(similarity(structure_views(pixels_a), structure_views(pixels_b)), 4), counts)
    return Check("geometry", round(_inlier_share(a, b), 4), counts)


def compare_files(task: tuple[str, str, bool, int]) -> Check:
    """compare() on two files (a worker's task: path_a, path_b, mirrored, max_pixels)."""
    path_a, path_b, mirrored, max_pixels = task
    a, b = (decode_bytes(read_bytes(p), max_pixels, draft_size=_SIDE)[0] for p in (path_a, path_b))
    return compare(a, b, mirrored)


def _grey(pixels: np.ndarray, side: int) -> np.ndarray:
    grey = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    grey = _scaled(grey, side / max(grey.shape), cv2.INTER_AREA)
    return _scaled(grey, _SIDE / max(grey.shape), cv2.INTER_LINEAR) if side < _SIDE else grey


def _scaled(grey: np.ndarray, factor: float, interpolation: int) -> np.ndarray:
    h, w = grey.shape
    return cv2.resize(grey, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=interpolation)


_ORB = cv2.ORB_create(nfeatures=_KEYPOINTS)
_MATCHER = cv2.BFMatcher(cv2.NORM_HAMMING)


def _features(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    keypoints, descriptors = _ORB.detectAndCompute(grey, None)
    return np.float32([k.pt for k in keypoints]).reshape(-1, 2), descriptors


def _inlier_share(f1, f2) -> float:
    """Share of the smaller keypoint set that one similarity transform maps onto
    its matches in the other (0..1: the smaller set is the one matched from)."""
    (pq, dq), (pt, dt) = sorted((f1, f2), key=lambda f: len(f[0]))
    if dq is None or dt is None or len(dt) < 2:
        return 0.0
    good = [m[0] for m in _MATCHER.knnMatch(dq, dt, k=2) if len(m) == 2 and m[0].distance < _RATIO * m[1].distance]
    if len(good) < 3:
        return 0.0
    _, inliers = cv2.estimateAffinePartial2D(pq[[m.queryIdx for m in good]], pt[[m.trainIdx for m in good]],
                                             method=cv2.RANSAC, ransacReprojThreshold=_REPROJ)
    return 0.0 if inliers is None else float(inliers.sum()) / len(pq)


# -- the pixel fallback ------------------------------------------------------------
# The correlation of band-passed (difference-of-Gaussians) grey thumbnails, the best
# over small crops and shifts of either image (which aligns a lightly cropped copy
# with its source). Copies score 0.72-1.0, but so do some different cars in the same
# studio pose: only for images where geometry has nothing to go on.
_VIEW_SIDE = 128       # the grey image crops are cut from
_THUMB = 32            # side of the compared thumbnails
_BLUR = 3.0            # sigma, in thumbnail pixels, of the coarse layout taken away
_SCALES = (1.0, 0.92, 0.84)
_OFFSETS = (-1, 0, 1)  # crop window at the left/top edge, centred, at the right/bottom edge


def structure_views(pixels: np.ndarray) -> np.ndarray:
    """(views, _THUMB**2) float32 unit vectors: the band-passed thumbnail of the whole
    image first, then of crops of it (scales x offsets)."""
    grey = Image.fromarray(pixels).convert("L")
    grey = grey.resize((_VIEW_SIDE, _VIEW_SIDE), Image.Resampling.BILINEAR)
    views = []
    for scale in _SCALES:
        w = scale * _VIEW_SIDE
        for dx in _OFFSETS:
            for dy in _OFFSETS:
                if scale == 1.0 and (dx or dy):
                    continue
                x0, y0 = (_VIEW_SIDE - w) / 2 * (1 + dx), (_VIEW_SIDE - w) / 2 * (1 + dy)
                t = np.asarray(grey.resize((_THUMB, _THUMB), Image.Resampling.BILINEAR,
                                           box=(x0, y0, x0 + w, y0 + w)), np.float64)
                t = (t - gaussian_filter(t, _BLUR)).ravel()
                t -= t.mean()
                views.append(t / (np.linalg.norm(t) + 1e-9))
    return np.stack(views).astype(np.float32)


def similarity(views_a: np.ndarray, views_b: np.ndarray) -> float:
    """How alike two images' fine structure is (-1..1): each whole image against the
    other's crops, at the best alignment."""
    return float(max((views_a[:1] @ views_b.T).max(), (views_b[:1] @ views_a.T).max()))
