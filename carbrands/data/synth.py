"""The built-in synthetic dataset: procedurally drawn cars of fictional brands.

Written in the Kaggle layout `{train,val,test}/<Brand>/<name>.jpg`, JPEG 320 px
wide with heights that vary like the real set's (mostly 200..260, a few from 50
to 700). Each image shows one car (side or three-quarter view, facing left or
right) on a varied background, with random scale, position, lighting, blur,
noise and sometimes an object in front of it.

A brand shows in several cues at once: body style, grille pattern, light shape,
emblem shape, wheel rims, paint decor, glass tint, stance and colour. Each brand
has a preferred value per cue, but every cue of every image is drawn from that
preference only with probability CUE_FIDELITY (else from the other values), and
preferences are shared between brands, so no single cue gives a brand away: a
model has to combine them (a small CNN does; a linear model on raw pixels does not).

Every image's random generator is derived from (seed, split, brand, index), so
parallel generation gives the same bytes as serial generation. A few train
images are copied into val/test on purpose (exact and near copies, listed in
planted.csv) so that the audit's leakage detection can be checked against the
truth; the copies take the place of generated images, so every folder holds
exactly per_brand[split] files.
"""
from __future__ import annotations

import csv
import hashlib
import io
import math
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from carbrands.data.names import SPLITS
from carbrands.errors import ParamError
from carbrands.files import atomic_path
from carbrands.parallel import default_workers, parallel_map

WIDTH = 320
MIN_HEIGHT, MAX_HEIGHT = 50, 700

# Fictional brands; like the real set, some names hold spaces or hyphens.
BRAND_NAMES = (
    "Aurel Motors", "Vanta-Kraft", "Norrvik", "Castellan", "Kestrel Auto", "Ostra-Lind",
    "Brava", "Halden", "Moravia Cars", "Quillon", "Tessaro-Veil", "Zephra",
    "Iron Brook", "Solenne", "Dravik-Hale", "Pellucid",
)

# Probability that a cue shows the brand's preferred value (else another value).
# Calibrated: at 0.7 the reference CNN (64x64, 30 epochs) stayed near 57 % test
# accuracy, because emblem, grille and light shapes are only a few pixels at 64x64.
CUE_FIDELITY = 0.85

BODIES = ("sedan", "hatchback", "suv", "coupe", "pickup", "wagon", "van")
GRILLES = ("horizontal", "vertical", "mesh", "dots", "kidney", "single_bar")
LIGHTS = ("round", "rect", "slim", "angular", "twin")
EMBLEMS = ("circle", "diamond", "triangle", "shield", "star", "ring", "cross")
RIMS = ("five_spoke", "multi_spoke", "solid", "split", "gold")
DECOR = ("plain", "side_stripe", "two_tone_roof", "dark_lower", "chrome_line")
GLASS = ("blue", "dark", "silver", "green", "bronze")
STANCES = ("normal", "low", "raised", "big_wheels")
_GLASS_RGB = {"blue": (55, 70, 95), "dark": (22, 22, 26), "silver": (150, 162, 175), "green": (45, 85, 70),
              "bronze": (100, 75, 50)}
# wheel radius factor and ground offset (car units; negative: the body rides higher)
_STANCE = {"normal": (1.0, 0.0), "low": (.9, .03), "raised": (1.08, -.05), "big_wheels": (1.22, -.03)}
COLOURS = (
    (178, 34, 34), (30, 70, 160), (190, 192, 198), (28, 28, 32), (235, 235, 232),
    (40, 110, 60), (225, 190, 40), (220, 110, 30), (20, 35, 75), (110, 30, 45),
)
CUES = {"body": BODIES, "grille": GRILLES, "lights": LIGHTS, "emblem": EMBLEMS, "rims": RIMS, "decor": DECOR,
        "glass": GLASS, "stance": STANCES}


# -- brands and their preferences ------------------------------------------------

def brand_names(n: int) -> list[str]:
    """The first n fictional brand names; beyond the fixed 16, 'Brand 17', 'Brand 18', ..."""
    return list(BRAND_NAMES[:n]) + [f"Brand {i + 1}" for i in range(len(BRAND_NAMES), n)]


@dataclass(frozen=True)
class Profile:
    """A brand's preferred value per cue (indices into the cue tables) and two colours."""
    body: int
    grille: int
    lights: int
    emblem: int
    rims: int
    decor: int
    glass: int
    stance: int
    colours: tuple[int, int]


def brand_profiles(n: int) -> list[Profile]:
    """Preferences for the brands at positions 0..n-1 of the brand list.

    Fixed (independent of the run's seed) so a brand looks the same in every
    dataset. Drawn greedily so that any two brands differ in at least 4 of the
    8 shape cues; with 7 or fewer values per cue, brands still share values.
    """
    rng = np.random.default_rng(20240611)
    sizes = [len(v) for v in CUES.values()]
    chosen: list[tuple[int, ...]] = []
    min_diff = 4
    while len(chosen) < n:
        for _ in range(2000):
            cand = tuple(int(rng.integers(s)) for s in sizes)
            if all(sum(a != b for a, b in zip(cand, c)) >= min_diff for c in chosen):
                break
        else:
            min_diff -= 1  # more brands than the cue space separates by 3
            continue
        chosen.append(cand)
    profiles = []
    for i, cues in enumerate(chosen):
        # colour pairs overlap between brands: colour alone says little
        first = (i * 3) % len(COLOURS)
        second = (first + 1 + i // len(COLOURS) + (i % 4)) % len(COLOURS)
        profiles.append(Profile(*cues, colours=(first, second)))
    return profiles


def _pick(rng: np.random.Generator, preferred: int, n_values: int) -> int:
    if rng.random() < CUE_FIDELITY:
        return preferred
    other = int(rng.integers(n_values - 1))
    return other + (other >= preferred)


def _traits(rng: np.random.Generator, profile: Profile) -> dict:
    t = {cue: _pick(rng, getattr(profile, cue), len(values)) for cue, values in CUES.items()}
    if rng.random() < CUE_FIDELITY:
        colour = profile.colours[int(rng.integers(2))]
    else:
        colour = int(rng.integers(len(COLOURS)))
    base = np.array(COLOURS[colour], float) * rng.uniform(0.9, 1.08) + rng.normal(0, 6, 3)
    t["colour"] = tuple(int(c) for c in np.clip(base, 0, 255))
    return t


# -- image geometry ----------------------------------------------------------------

def image_height(rng: np.random.Generator) -> int:
    """Mostly a narrow spread around 230 px; a few outliers from 50 to 700, like the real set."""
    if rng.random() < 0.92:
        return int(np.clip(round(rng.normal(230, 12)), 200, 260))
    return int(round(math.exp(rng.uniform(math.log(MIN_HEIGHT), math.log(MAX_HEIGHT)))))


# Silhouettes in car units (length 1, y up from the ground), facing right (front at x=1):
# outline, side windows, wheel centres (x), wheel radius, belt line height, length factor.
_SHAPES = {
    "sedan": dict(outline=[(0, .08), (0, .2), (.03, .24), (.22, .25), (.32, .36), (.62, .36), (.74, .25),
                           (.97, .22), (1, .17), (1, .08)],
                  windows=[(.25, .255), (.335, .345), (.61, .345), (.71, .255)],
                  wheels=(.18, .8), r=.095, belt=.25, length=1.0),
    "hatchback": dict(outline=[(0, .08), (0, .26), (.04, .36), (.55, .37), (.7, .26), (.96, .23), (1, .17),
                               (1, .08)],
                      windows=[(.05, .27), (.07, .35), (.54, .355), (.67, .265)],
                      wheels=(.17, .8), r=.1, belt=.26, length=.82),
    "suv": dict(outline=[(0, .08), (0, .42), (.03, .46), (.6, .46), (.72, .32), (.97, .3), (1, .24), (1, .08)],
                windows=[(.04, .33), (.05, .44), (.59, .44), (.69, .33)],
                wheels=(.17, .81), r=.11, belt=.32, length=.95),
    "coupe": dict(outline=[(0, .08), (0, .19), (.05, .22), (.2, .24), (.45, .33), (.6, .33), (.74, .23),
                           (.98, .2), (1, .15), (1, .08)],
                  windows=[(.3, .245), (.46, .32), (.59, .32), (.7, .235)],
                  wheels=(.18, .8), r=.09, belt=.235, length=.95),
    "pickup": dict(outline=[(0, .08), (0, .3), (.44, .3), (.46, .47), (.66, .47), (.75, .32), (.98, .3),
                            (1, .23), (1, .08)],
                   windows=[(.48, .33), (.49, .45), (.65, .45), (.72, .33)],
                   wheels=(.17, .8), r=.11, belt=.31, length=1.05),
    "wagon": dict(outline=[(0, .08), (0, .3), (.02, .37), (.6, .37), (.73, .26), (.97, .23), (1, .17), (1, .08)],
                  windows=[(.03, .265), (.04, .355), (.59, .355), (.7, .26)],
                  wheels=(.17, .8), r=.095, belt=.26, length=1.0),
    "van": dict(outline=[(0, .08), (0, .48), (.03, .5), (.7, .5), (.88, .3), (.99, .26), (1, .2), (1, .08)],
                windows=[(.05, .34), (.06, .47), (.69, .47), (.84, .32)],
                wheels=(.15, .83), r=.1, belt=.31, length=.95),
}
_BODY_TOP = {k: max(y for _, y in s["outline"]) for k, s in _SHAPES.items()}


class _Canvas:
    """Maps car units (x from the rear, y up) to pixels of the car layer."""

    def __init__(self, length: float, sx: float, top: float, pad: float):
        self.L, self.sx, self.top, self.pad = length, sx, top, pad

    def p(self, x: float, y: float) -> tuple[float, float]:
        return (self.pad + x * self.sx * self.L, self.pad + (self.top - y) * self.L)

    def poly(self, pts) -> list[tuple[float, float]]:
        return [self.p(x, y) for x, y in pts]


def _shade(c, f: float) -> tuple[int, int, int]:
    return tuple(int(np.clip(v * f, 0, 255)) for v in c)


def _draw_shape(d: ImageDraw.ImageDraw, kind: str, cx: float, cy: float, r: float, fill, outline=None):
    """Emblem/light shapes centred at (cx, cy) with radius r."""
    if kind in ("circle", "round"):
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill, outline=outline)
    elif kind == "ring":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=fill, width=max(1, int(r * .45)))
    elif kind == "diamond":
        d.polygon([(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)], fill=fill, outline=outline)
    elif kind == "triangle":
        d.polygon([(cx, cy - r), (cx + r, cy + r * .8), (cx - r, cy + r * .8)], fill=fill, outline=outline)
    elif kind == "shield":
        d.polygon([(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy), (cx, cy + r * 1.2), (cx - r, cy)],
                  fill=fill, outline=outline)
    elif kind == "star":
        pts = [(cx + (r if i % 2 == 0 else r * .45) * math.sin(i * math.pi / 5),
                cy - (r if i % 2 == 0 else r * .45) * math.cos(i * math.pi / 5)) for i in range(10)]
        d.polygon(pts, fill=fill, outline=outline)
    elif kind == "cross":
        w = max(1, r * .38)
        d.rectangle([cx - r, cy - w, cx + r, cy + w], fill=fill)
        d.rectangle([cx - w, cy - r, cx + w, cy + r], fill=fill)
    else:
        raise ValueError(kind)


def _draw_light(d, kind: str, cx: float, cy: float, s: float, colour, facing_right_edge: bool = True):
    """A headlight or tail light of size s; (cx, cy) is its centre."""
    if kind == "round":
        d.ellipse([cx - s * .55, cy - s * .55, cx + s * .55, cy + s * .55], fill=colour, outline=(40, 40, 40))
    elif kind == "rect":
        d.rectangle([cx - s * .8, cy - s * .45, cx + s * .8, cy + s * .45], fill=colour, outline=(40, 40, 40))
    elif kind == "slim":
        d.rectangle([cx - s * 1.3, cy - s * .16, cx + s * 1.3, cy + s * .16], fill=colour)
    elif kind == "angular":
        sgn = 1 if facing_right_edge else -1
        d.polygon([(cx - sgn * s * 1.1, cy - s * .1), (cx + sgn * s * .9, cy - s * .5),
                   (cx + sgn * s * .9, cy + s * .35), (cx - sgn * s * .6, cy + s * .3)], fill=colour)
    elif kind == "twin":
        r = s * .36
        for off in (-s * .45, s * .45):
            d.ellipse([cx + off - r, cy - r, cx + off + r, cy + r], fill=colour, outline=(40, 40, 40))
    else:
        raise ValueError(kind)


def _draw_grille(d, kind: str, box, colour):
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    dark = (25, 25, 28)
    if kind == "kidney":
        gap = w * .06
        d.rounded_rectangle([x0, y0, (x0 + x1) / 2 - gap, y1], radius=max(1, h * .35), fill=dark, outline=colour,
                            width=max(1, int(w * .04)))
        d.rounded_rectangle([(x0 + x1) / 2 + gap, y0, x1, y1], radius=max(1, h * .35), fill=dark, outline=colour,
                            width=max(1, int(w * .04)))
        return
    d.rectangle(box, fill=dark)
    lw = max(1, int(min(w, h) * .1))
    if kind == "horizontal":
        for k in range(1, 4):
            y = y0 + h * k / 4
            d.line([(x0, y), (x1, y)], fill=colour, width=lw)
    elif kind == "vertical":
        for k in range(1, 7):
            x = x0 + w * k / 7
            d.line([(x, y0), (x, y1)], fill=colour, width=lw)
    elif kind == "mesh":
        for k in range(1, 6):
            x = x0 + w * k / 6
            d.line([(x, y0), (x, y1)], fill=colour, width=1)
        for k in range(1, 3):
            y = y0 + h * k / 3
            d.line([(x0, y), (x1, y)], fill=colour, width=1)
    elif kind == "dots":
        r = max(1, min(w, h) * .09)
        for i in range(6):
            for j in range(3):
                cx, cy = x0 + w * (i + .5 + (j % 2) * .4) / 6.4, y0 + h * (j + .5) / 3
                d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=colour)
    elif kind == "single_bar":
        d.rectangle([x0, y0 + h * .38, x1, y0 + h * .62], fill=colour)
    else:
        raise ValueError(kind)
    d.rectangle(box, outline=_shade(colour, .8), width=max(1, lw // 2))


def _draw_wheel(d, kind: str, cx, cy, rx, ry):
    d.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=(22, 22, 24))
    ix, iy = rx * .62, ry * .62
    # rims differ in tone too, so they show at low resolution
    rim = {"gold": (205, 170, 70), "multi_spoke": (120, 122, 128), "split": (215, 60, 50)}.get(kind, (200, 202, 206))
    if kind == "solid":
        d.ellipse([cx - ix, cy - iy, cx + ix, cy + iy], fill=(120, 122, 128))
        d.ellipse([cx - ix * .3, cy - iy * .3, cx + ix * .3, cy + iy * .3], fill=(200, 200, 205))
        return
    d.ellipse([cx - ix, cy - iy, cx + ix, cy + iy], fill=(60, 60, 64) if kind != "gold" else (70, 60, 40))
    spokes = {"five_spoke": 5, "multi_spoke": 12, "split": 4, "gold": 6}[kind]
    width = max(1, int(rx * (.22 if kind in ("five_spoke", "split") else .09)))
    for k in range(spokes):
        a = 2 * math.pi * k / spokes
        d.line([(cx, cy), (cx + ix * math.cos(a), cy + iy * math.sin(a))], fill=rim, width=width)
    d.ellipse([cx - ix, cy - iy, cx + ix, cy + iy], outline=rim, width=max(1, int(rx * .08)))


def _draw_decor(d, kind: str, p, shape, col, L: float):
    """Paint decor over large areas of the side, so it shows even at low resolution."""
    belt, outline = shape["belt"], shape["outline"]
    contrast = (245, 245, 240) if sum(col) < 450 else (25, 25, 30)
    if kind == "side_stripe":
        d.polygon([p(.03, belt - .07), p(.97, belt - .05), p(.97, belt - .09), p(.03, belt - .11)], fill=contrast)
    elif kind == "two_tone_roof":
        roof = [(x, y) for x, y in outline if y > belt + .02]
        if len(roof) >= 2:
            d.polygon([p(x, y) for x, y in roof]
                      + [p(roof[-1][0], roof[-1][1] - .03), p(roof[0][0], roof[0][1] - .03)], fill=contrast)
    elif kind == "dark_lower":
        d.polygon([p(0, .08), p(0, .17), p(1, .17), p(1, .08)], fill=(35, 35, 38))
    elif kind == "chrome_line":
        w = max(2, int(L * .02))
        d.line([p(.02, .15), p(.98, .15)], fill=(225, 228, 232), width=w)
        d.line([p(.05, belt + .005), p(.95, belt + .005)], fill=(225, 228, 232), width=max(1, w // 2))


def _front_points(outline) -> tuple[tuple, tuple, tuple]:
    """Roof front, windshield base and hood front of a silhouette (the points after the last roof point)."""
    top = max(y for _, y in outline)
    k = max(i for i, (_, y) in enumerate(outline) if y == top)
    return outline[k], outline[k + 1], outline[k + 2]


def draw_car(traits: dict, length: float, three_quarter: bool) -> Image.Image:
    """An RGBA image of the car, facing right, `length` pixels long (before the view's squeeze).

    The three-quarter view squeezes the side and adds the surfaces seen from the
    front-right: windshield, hood and the front face with grille, lights and emblem."""
    shape = _SHAPES[BODIES[traits["body"]]]
    L = length * shape["length"]
    sx = .72 if three_quarter else 1.0
    front_w = .3 * L if three_quarter else 0.0
    rise = .04 * L if three_quarter else 0.0  # the far side recedes upwards
    pad = L * .04
    top = _BODY_TOP[BODIES[traits["body"]]]
    cv = _Canvas(L, sx, top, pad)
    w = int(pad * 2 + sx * L + front_w) + 2
    h = int(pad * 2 + rise + (top + .06) * L) + 2  # room below for raised stances
    img = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    col = traits["colour"]
    dark, light = _shade(col, .6), _shade(col, 1.25)
    lights = LIGHTS[traits["lights"]]
    emblem = EMBLEMS[traits["emblem"]]
    emblem_col = (230, 230, 235) if sum(col) < 450 else (40, 40, 45)
    glass = _GLASS_RGB[GLASS[traits['glass']]]
    wheel_scale, ground = _STANCE[STANCES[traits['stance']]]

    def p(x, y, far=0.0):
        px, py = cv.p(x, y)
        return (px + far * front_w, py + rise - far * rise)

    def quad(a, b):
        return [p(*a), p(*b), p(*b, far=1), p(*a, far=1)]

    outline = shape["outline"]
    if three_quarter:
        roof, base, nose = _front_points(outline)
        bumper = (1, .08)
        d.polygon(quad(roof, base), fill=glass, outline=dark)
        d.polygon(quad(base, nose), fill=_shade(col, 1.1), outline=dark)
        d.polygon(quad(nose, bumper), fill=_shade(col, .85), outline=dark)
    d.polygon([p(x, y) for x, y in outline], fill=col, outline=dark)
    # shading: a lighter band along the belt line, a dark rocker panel
    belt = shape["belt"]
    d.line([p(.02, belt - .01), p(.98, belt - .01)], fill=light, width=max(1, int(L * .008)))
    d.polygon([p(.02, .08), p(.02, .11), p(.98, .11), p(.98, .08)], fill=dark)
    win = shape["windows"]
    d.polygon([p(x, y) for x, y in win], fill=glass, outline=_shade(col, .5))
    mid = (win[0][0] + win[3][0]) / 2
    d.line([p(mid, win[0][1]), p(mid + .01, win[1][1])], fill=dark, width=max(1, int(L * .012)))
    d.line([p(mid, .12), p(mid, belt - .02)], fill=dark, width=1)  # door gap
    d.line([p(win[1][0] + .04, win[1][1] - .01), p(win[0][0] + .1, win[0][1] + .01)],
           fill=(120, 140, 165), width=max(1, int(L * .01)))  # a reflection on the glass

    _draw_decor(d, DECOR[traits["decor"]], p, shape, col, L)

    # lights: head light at the front corner, tail light at the rear
    s = L * .05
    hy = p(0, belt - .045)[1]
    _draw_light(d, lights, p(.985, 0)[0] - s * .6, hy, s, (250, 245, 210))
    _draw_light(d, lights, p(.012, 0)[0] + s * .6, hy, s, (200, 20, 25), facing_right_edge=False)

    r = shape["r"] * wheel_scale
    for wx in shape["wheels"]:
        cx, cy = p(wx, ground + r)
        d.ellipse([cx - r * L * 1.15 * sx, cy - r * L * 1.15, cx + r * L * 1.15 * sx, cy + r * L * .5],
                  fill=(30, 30, 32))  # wheel arch
        _draw_wheel(d, RIMS[traits["rims"]], cx, cy, r * L * sx, r * L)

    grille = GRILLES[traits["grille"]]
    if three_quarter:
        (x0, y0), (x1, y1) = p(*nose), p(*bumper, far=1)
        fw, fh = x1 - x0, y1 - y0
        yc = y0 - rise / 2  # the face is skewed by `rise`; centre things on its middle
        _draw_grille(d, grille, [x0 + fw * .27, yc + fh * .3, x0 + fw * .73, yc + fh * .75], (200, 200, 205))
        for lx, lift in ((x0 + fw * .13, 0), (x0 + fw * .87, rise * .75)):
            _draw_light(d, lights, lx, y0 + fh * .22 - lift, fw * .1, (250, 245, 210))
        _draw_shape(d, emblem, x0 + fw * .5, yc + fh * .18, fw * .085, emblem_col, outline=_shade(emblem_col, .6))
        yb = y1 + rise  # the near bottom corner
        d.polygon([(x0, yb - fh * .12), (x0, yb), (x1, y1), (x1, y1 - fh * .12)], fill=dark)  # bumper
    else:
        # side view: a sliver of grille at the nose
        gx = p(1, 0)[0]
        _draw_grille(d, grille, [gx - L * .05, p(0, belt - .06)[1], gx, p(0, .12)[1]], (200, 200, 205))
    ex, ey = p(.84, belt - .07)
    _draw_shape(d, emblem, ex, ey, L * .04, emblem_col, outline=_shade(emblem_col, .6))
    return img.crop(img.getbbox())  # the bottom edge is now where the wheels meet the ground


# -- backgrounds and clutter ---------------------------------------------------------

_SKIES = (((110, 160, 225), (200, 225, 250)), ((150, 155, 165), (210, 212, 215)),
          ((240, 150, 90), (120, 80, 140)), ((20, 30, 70), (70, 80, 120)), ((170, 200, 230), (240, 240, 235)))
_GROUNDS = ((95, 95, 98), (70, 120, 60), (150, 120, 85), (200, 190, 160), (60, 60, 62), (120, 130, 110))


def _gradient(w: int, h: int, top, bottom) -> np.ndarray:
    t = np.linspace(0, 1, max(h, 1))[:, None, None]
    row = np.array(top, float) * (1 - t) + np.array(bottom, float) * t
    return np.broadcast_to(row, (h, w, 3))


def _jitter(rng, c, amount=25):
    return tuple(int(v) for v in np.clip(np.array(c) + rng.normal(0, amount, 3), 0, 255))


def draw_background(rng: np.random.Generator, w: int, h: int, horizon: int) -> Image.Image:
    if rng.random() < .15:  # studio / showroom: plain wall and floor
        wall = _jitter(rng, (200, 200, 205), 40)
        arr = np.concatenate([_gradient(w, horizon, wall, _shade(wall, .85)),
                              _gradient(w, h - horizon, _shade(wall, .7), _shade(wall, .5))])
        return Image.fromarray(arr.astype(np.uint8))
    sky = _SKIES[int(rng.integers(len(_SKIES)))]
    ground = _jitter(rng, _GROUNDS[int(rng.integers(len(_GROUNDS)))], 20)
    arr = np.concatenate([_gradient(w, horizon, _jitter(rng, sky[0], 15), _jitter(rng, sky[1], 15)),
                          _gradient(w, h - horizon, ground, _shade(ground, rng.uniform(.6, 1.2)))])
    img = Image.fromarray(arr.astype(np.uint8))
    d = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(0, 4))):  # clouds
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, horizon * .7), rng.uniform(10, 40)
        d.ellipse([cx - r * 1.8, cy - r * .6, cx + r * 1.8, cy + r * .6], fill=_jitter(rng, (235, 235, 240), 10))
    if rng.random() < .6:  # a row of buildings on the horizon
        x = rng.uniform(-40, 0)
        while x < w:
            bw, bh = rng.uniform(25, 90), rng.uniform(.2, 1.0) * horizon
            c = _jitter(rng, (140, 130, 120), 45)
            d.rectangle([x, horizon - bh, x + bw, horizon], fill=c)
            wc = _shade(c, .55) if rng.random() < .7 else (230, 210, 130)
            for wy in np.arange(horizon - bh + 6, horizon - 6, 11):
                for wx in np.arange(x + 5, x + bw - 6, 10):
                    d.rectangle([wx, wy, wx + 4, wy + 5], fill=wc)
            x += bw + rng.uniform(0, 15)
    for _ in range(int(rng.integers(0, 5))):  # trees
        tx, r = rng.uniform(0, w), rng.uniform(8, 30)
        d.rectangle([tx - r * .12, horizon - r * 1.3, tx + r * .12, horizon + 2], fill=(80, 60, 40))
        d.ellipse([tx - r, horizon - r * 2.6, tx + r, horizon - r * .7], fill=_jitter(rng, (50, 110, 50), 25))
    if rng.random() < .6:  # a road with a dashed lane marking
        ry0 = horizon + (h - horizon) * rng.uniform(.1, .4)
        d.rectangle([0, ry0, w, h], fill=_jitter(rng, (75, 75, 78), 12))
        my = ry0 + (h - ry0) * rng.uniform(.2, .9)
        for mx in np.arange(rng.uniform(-30, 0), w, 45):
            d.rectangle([mx, my, mx + 25, my + max(1, (h - horizon) * .02)], fill=(225, 225, 215))
    for _ in range(int(rng.integers(0, 5))):
        _clutter(rng, d, rng.uniform(0, w), rng.uniform(horizon - 10, h), rng.uniform(6, 30))
    return img


def _clutter(rng, d: ImageDraw.ImageDraw, x: float, y: float, s: float):
    """A random object standing at (x, y): pole, sign, cone, person, bush, box or distant car."""
    kind = int(rng.integers(7))
    c = tuple(int(v) for v in rng.integers(0, 256, 3))
    if kind == 0:
        d.rectangle([x - s * .08, y - s * 4, x + s * .08, y], fill=(90, 90, 95))
    elif kind == 1:
        d.rectangle([x - s * .05, y - s * 2.5, x + s * .05, y], fill=(110, 110, 110))
        d.rectangle([x - s * .5, y - s * 3.2, x + s * .5, y - s * 2.4], fill=c)
    elif kind == 2:
        d.polygon([(x, y - s), (x + s * .4, y), (x - s * .4, y)], fill=(240, 110, 20))
    elif kind == 3:
        d.ellipse([x - s * .25, y - s * 2.6, x + s * .25, y - s * 2.1], fill=(200, 160, 130))
        d.rectangle([x - s * .35, y - s * 2.1, x + s * .35, y - s * .9], fill=c)
        d.rectangle([x - s * .3, y - s * .9, x + s * .3, y], fill=_shade(c, .5))
    elif kind == 4:
        for _ in range(3):
            r = s * rng.uniform(.4, .8)
            ox = rng.uniform(-s * .6, s * .6)
            d.ellipse([x + ox - r, y - 2 * r, x + ox + r, y], fill=_jitter(rng, (45, 105, 45), 20))
    elif kind == 5:
        d.rectangle([x - s * .6, y - s, x + s * .6, y], fill=c)
    else:  # a distant car-like blob in any colour, so colour alone cannot point at the subject
        d.rounded_rectangle([x - s * 1.5, y - s * .7, x + s * 1.5, y], radius=s * .2, fill=c)
        d.rectangle([x - s * .8, y - s * 1.1, x + s * .6, y - s * .6], fill=_shade(c, .8))


# -- one whole image -------------------------------------------------------------------

def render_image(rng: np.random.Generator, profile: Profile) -> Image.Image:
    """One RGB photo-like image of a car with the brand's (noisy) cues."""
    h = image_height(rng)
    w = WIDTH
    traits = _traits(rng, profile)
    three_quarter = rng.random() < .5
    facing_left = rng.random() < .5
    horizon = int(h * rng.uniform(.3, .65))
    img = draw_background(rng, w, h, horizon)

    # the car fills 55..98 % of the width, less where the image is too flat to hold it
    length = w * rng.uniform(.55, .98)
    car = draw_car(traits, length, three_quarter)
    fit = min(1.0, h * rng.uniform(.7, .95) / car.height)
    if fit < 1:
        car = car.resize((max(1, int(car.width * fit)), max(1, int(car.height * fit))), Image.BILINEAR)
    if facing_left:
        car = car.transpose(Image.FLIP_LEFT_RIGHT)
    # mostly inside the frame, sometimes slightly cut off at a side
    x = int(rng.uniform(-car.width * .08, w - car.width * .92))
    bottom = int(rng.uniform(max(horizon + 2, car.height), max(horizon + 3, car.height + 1, h * .98)))
    y = min(bottom, h) - car.height
    d = ImageDraw.Draw(img)
    d.ellipse([x + car.width * .05, y + car.height * .92, x + car.width * .95, y + car.height * 1.05],
              fill=(35, 35, 38))  # shadow
    img.paste(car, (x, y), car)
    if rng.random() < .25:  # something in front of the car
        _clutter(rng, d, x + rng.uniform(0, car.width), y + car.height * rng.uniform(.9, 1.1),
                 car.height * rng.uniform(.2, .45))

    img = ImageEnhance.Brightness(img).enhance(rng.uniform(.7, 1.25))
    img = ImageEnhance.Contrast(img).enhance(rng.uniform(.75, 1.15))
    if rng.random() < .4:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(.3, 1.2)))
    arr = np.asarray(img, dtype=np.float32) * rng.uniform(.9, 1.1, 3)  # colour cast
    arr += rng.normal(0, rng.uniform(0, 7), arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def encode_jpeg(img: Image.Image, quality: int) -> bytes:
    """JPEG bytes that depend only on the pixels and quality (no EXIF, no timestamps)."""
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality, optimize=False, progressive=False)
    return buf.getvalue()


# -- the dataset -------------------------------------------------------------------------

def _rng(seed: int, *keys: str | int) -> np.random.Generator:
    # crc32 of strings: stable across processes, unlike hash()
    ints = [k if isinstance(k, int) else zlib.crc32(k.encode()) for k in keys]
    return np.random.default_rng([seed, *ints])


def file_name(seed: int, split: str, brand: str, index: int) -> str:
    """A name that reveals neither the index nor whether the file is a planted copy."""
    return hashlib.sha1(f"{seed}/{split}/{brand}/{index}".encode()).hexdigest()[:14] + ".jpg"


@dataclass(frozen=True)
class _Task:
    split: str
    brand: str
    brand_pos: int
    index: int


def _generate_chunk(args) -> int:
    root, tasks, seed, quality, n_brands = args
    profiles = brand_profiles(n_brands)
    for t in tasks:
        img = render_image(_rng(seed, t.split, t.brand, t.index), profiles[t.brand_pos])
        path = Path(root) / t.split / t.brand / file_name(seed, t.split, t.brand, t.index)
        path.write_bytes(encode_jpeg(img, quality))
    return len(tasks)


def _plant_slots(brands: list[str], per_brand: dict, seed: int, n: int) -> list[tuple[_Task, int]]:
    """n distinct val/test slots, each with a distinct train index of the same brand as its source."""
    rng = _rng(seed, "planted")
    slots = [(s, b, i) for s in ("val", "test") for b in range(len(brands)) for i in range(per_brand.get(s, 0))]
    order = rng.permutation(len(slots))
    sources: dict[int, list[int]] = {b: list(rng.permutation(per_brand["train"])) for b in range(len(brands))}
    out = []
    for k in order:
        if len(out) == n:
            break
        split, b, i = slots[k]
        if sources[b]:
            out.append((_Task(split, brands[b], b, i), int(sources[b].pop())))
    if len(out) < n:
        raise ParamError("synth.planted_exact", f"planted_exact + planted_near = {n} copies do not fit: "
                         f"only {len(out)} val/test images have a train image of their brand to copy")
    return out


def _near_copy(data: bytes, rng: np.random.Generator, quality: int) -> bytes:
    """Resized to a smaller width, slightly brighter or darker, re-encoded at another quality."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    width = int(rng.choice([224, 240, 256, 288]))
    height = max(1, round(img.height * width / img.width))
    img = img.resize((width, height), Image.LANCZOS)
    img = ImageEnhance.Brightness(img).enhance(rng.choice([.94, .97, 1.03, 1.06]))
    other = quality - 18 if quality >= 50 else quality + 18
    return encode_jpeg(img, other)


def generate_dataset(out_dir: str | Path, brands: int | Sequence[str], per_brand: dict, seed: int,
                     planted_exact: int, planted_near: int, jpeg_quality: int,
                     workers: int | None = None) -> dict:
    """Write the synthetic dataset to out_dir (replacing it as a whole, atomically).

    brands: a number of brands (names from brand_names) or the names themselves.
    per_brand: images per brand for each of train, val, test; planted copies
    replace generated val/test images, so every folder holds exactly that many.
    workers: processes to draw with (None: one per available core).
    Returns a summary (counts, brands, planted copies, seconds taken).
    """
    names = brand_names(brands) if isinstance(brands, int) else list(brands)
    if len(set(names)) != len(names) or not all(n and "/" not in n and n.strip() == n for n in names):
        raise ParamError("synth.brands", f"brand names must be distinct folder names, got {names!r}")
    started = time.perf_counter()
    planted = _plant_slots(names, per_brand, seed, planted_exact + planted_near)
    skip = {(t.split, t.brand, t.index) for t, _ in planted}
    workers = workers or default_workers()
    tasks = [_Task(s, b, pos, i) for s in SPLITS for pos, b in enumerate(names) for i in range(per_brand[s])
             if (s, b, i) not in skip]

    with atomic_path(out_dir) as tmp:
        for s in SPLITS:
            for b in names:
                if per_brand[s]:
                    (tmp / s / b).mkdir(parents=True)
        chunks = [tasks[i:i + 16] for i in range(0, len(tasks), 16)]
        jobs = [(str(tmp), c, seed, jpeg_quality, len(names)) for c in chunks]
        for _ in parallel_map(_generate_chunk, jobs, workers):
            pass
        rows = _write_planted(tmp, planted, planted_exact, seed, jpeg_quality)
    return {
        "out_dir": str(out_dir),
        "brands": names,
        "images": {s: per_brand[s] * len(names) for s in SPLITS},
        "planted": {"exact": planted_exact, "near": planted_near, "copies": rows},
        "workers": workers,
        "seconds": round(time.perf_counter() - started, 2),
    }


def _write_planted(root: Path, planted, n_exact: int, seed: int, quality: int) -> list[dict]:
    rows = []
    for k, (slot, src_index) in enumerate(planted):
        source = f"train/{slot.brand}/{file_name(seed, 'train', slot.brand, src_index)}"
        copy = f"{slot.split}/{slot.brand}/{file_name(seed, slot.split, slot.brand, slot.index)}"
        data = (root / source).read_bytes()
        kind = "exact" if k < n_exact else "near"
        if kind == "near":
            data = _near_copy(data, _rng(seed, "near", slot.split, slot.brand, slot.index), quality)
        (root / copy).write_bytes(data)
        rows.append({"kind": kind, "source": source, "copy": copy})
    with open(root / "planted.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["kind", "source", "copy"])
        writer.writeheader()
        writer.writerows(rows)
    return rows
