"""Deterministic synthetic demo dataset with a planted ground truth.

Draws schematic cartoon faces whose smile, eye openness, brow tilt and jaw width are known per
image, and writes two rater groups' ratings of two traits as known weighted sums of those
parameters, so the whole pipeline (training, LRP heatmaps, relevance per face region) can be run
and checked without any real face images or real ratings:

    python -m facetraits.demo --out data/demo

The weights are planted so that the group ``ASD`` leans on the lower face (mouth, jaw) and the
group ``NT`` on the upper face (eyes, brows).  THE DATA ARE SYNTHETIC: they say nothing about real
autistic or non-autistic people or any real rater group.

Only numpy and pillow are used (no TensorFlow).  Output is byte-identical for the same
arguments: every random draw comes from one ``numpy.random.default_rng(seed)`` in a fixed order,
transcendental functions go through Python's ``math`` module (not SIMD-dispatched numpy ufuncs),
PNGs carry no metadata and CSVs use fixed float formats and ``\\n`` line endings.

Coordinates: the face is built in a canonical frame (units = fraction of the image side, origin
at the face centre, y pointing down), moved by a similarity transform (scale, in-plane rotation,
translation), drawn at ``SUPERSAMPLE`` times the output size and downsampled with LANCZOS.
Landmarks are the same canonical points pushed through the same transform and reported in output
pixel coordinates where the centre of pixel (row i, column j) is (x=j, y=i).
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageDraw

SUPERSAMPLE = 4
GROUPS = ("ASD", "NT")
TRAITS = ("warm", "strong")
DRIVERS = ("smile", "eye_openness", "brow_angle", "jaw_width")

# Planted ground truth, per simulated rater r of a group:
#   rating = round(clip(4 + leniency_r + RATING_GAIN * sum_k w_rk * term_k + N(0, RATER_NOISE_SD), 1, 7)),
# w_rk = the group's weight w_k + N(0, RATER_WEIGHT_SD): raters differ, groups differ more.
# Terms are dataset z-scores of the drawn geometry; for "strong" the brow term is -brow_angle_z
# (brows whose inner ends are LOWERED, a frown, read as stronger).
WEIGHTS = {
    ("ASD", "warm"): {"smile_z": 0.80, "eye_openness_z": 0.20},
    ("NT", "warm"): {"smile_z": 0.25, "eye_openness_z": 0.75},
    ("ASD", "strong"): {"jaw_width_z": 0.75, "brow_lowering_z": 0.25},
    ("NT", "strong"): {"jaw_width_z": 0.25, "brow_lowering_z": 0.75},
}
# What the benchmarks check, derived from WEIGHTS: the face region (facetraits/regions.py) each term is
# drawn in; per (group, trait) the region of its largest weight; per (trait, region) the sign of ASD - NT.
TERM_REGIONS = {"smile_z": "mouth", "eye_openness_z": "eyes", "jaw_width_z": "jaw", "brow_lowering_z": "brows"}
PLANTED_WINNERS = {key: TERM_REGIONS[max(weights, key=weights.get)] for key, weights in WEIGHTS.items()}
PLANTED_DIFFERENCES = {(trait, TERM_REGIONS[term]): int(np.sign(WEIGHTS[("ASD", trait)].get(term, 0.0)
                                                                 - WEIGHTS[("NT", trait)].get(term, 0.0)))
                       for (_, trait), weights in WEIGHTS.items() for term in weights}
RATING_CENTRE = 4.0
RATING_GAIN = 1.2
RATERS_PER_GROUP = 30
RATER_WEIGHT_SD = 0.15  # rater-to-rater spread of each planted weight
RATER_LENIENCY_SD = 0.3  # rater-to-rater spread of the mean rating
RATER_NOISE_SD = 1.0  # one rater's noise per rating (the mean of 30 raters: 0.18)
RATING_MIN, RATING_MAX = 1.0, 7.0

# Nuisance ranges (translation is in output pixels at 128 px and scales with `size`).
MAX_SHIFT_PX_AT_128 = 5.0
MAX_ROTATION_DEG = 6.0
MAX_SCALE_DEV = 0.06
GLASSES_PROB = 0.25

# How strongly the drivers show in the drawing (per SD of the latent expression variable).
SMILE_PER_SD, SMILE_MAX = 0.30, 0.9  # mouth sag / mouth half-width
EYE_OPENNESS_MEAN, EYE_OPENNESS_PER_SD, EYE_OPENNESS_RANGE = 0.36, 0.11, (0.08, 0.72)  # eye height / width
BROW_DEG_PER_SD, BROW_MAX_DEG = 10.0, 25.0  # brow tilt
JAW_N_MEDIAN, JAW_N_LOG_PER_SD, JAW_N_RANGE = 2.5, 0.28, (1.4, 5.0)  # lower-face superellipse exponent (log-normal)
MOUTH_LINE_WIDTH = 0.011  # canonical units (fraction of the image side)
BROW_WIDTH = 0.030
FACE_CENTRE = (0.5, 0.49)  # canonical origin, as a fraction of the image side

N_CIRCLE = 72
_CIRCLE = np.array(
    [[math.cos(2 * math.pi * i / N_CIRCLE), math.sin(2 * math.pi * i / N_CIRCLE)] for i in range(N_CIRCLE)]
)

SKIN_LIGHT = np.array([244.0, 208.0, 182.0])
SKIN_DARK = np.array([112.0, 74.0, 54.0])
HAIR_COLOURS = np.array(
    [[28, 22, 20], [60, 40, 28], [98, 66, 40], [130, 62, 34], [196, 160, 96], [150, 146, 140]], dtype=float
)
IRIS_COLOURS = np.array([[70, 45, 25], [40, 30, 22], [60, 95, 140], [70, 110, 70], [110, 90, 50]], dtype=float)
LIP_RED = np.array([168.0, 48.0, 62.0])
DARK_LINE = (22, 18, 18)


# --------------------------------------------------------------------------------------------
# parameters


def _lerp(a, b, t):
    return a + (b - a) * t


def _superellipse_jaw_width(n: float) -> float:
    """Half-width of the lower face at 3/4 of the way from ear level to chin, over the max half-width."""
    return math.pow(1.0 - math.pow(0.75, n), 1.0 / n)


def _zscore(x: np.ndarray) -> np.ndarray:
    sd = float(np.std(x))
    return (x - float(np.mean(x))) / (sd if sd > 0 else 1.0)


def sample_parameters(rng: np.random.Generator, n_identities: int, images_per_identity: int, size: int):
    """All random draws, in a fixed order.  Returns (identities: list of dict, images: list of dict)."""
    n_id, n_img = n_identities, images_per_identity
    # identity level -------------------------------------------------------------------------
    id_lat = rng.standard_normal((n_id, 4))  # smile, eye, brow baselines; jaw
    shape = rng.standard_normal((n_id, 8))  # face width/heights, eye/mouth/nose geometry
    skin_t = rng.uniform(0.0, 1.0, n_id)
    skin_jit = rng.uniform(-8.0, 8.0, (n_id, 3))
    hair_style = rng.choice(3, size=n_id, p=[0.15, 0.5, 0.35])  # 0 bald, 1 short, 2 long
    hair_col = rng.integers(0, len(HAIR_COLOURS), n_id)
    hairline = rng.uniform(-0.29, -0.24, n_id)
    iris_col = rng.integers(0, len(IRIS_COLOURS), n_id)
    shirt = rng.uniform(30.0, 220.0, (n_id, 3))
    # image level -----------------------------------------------------------------------------
    expr = rng.standard_normal((n_id, n_img, 3))  # smile, eye, brow expression
    shift = rng.uniform(-1.0, 1.0, (n_id, n_img, 2))
    rot = rng.uniform(-1.0, 1.0, (n_id, n_img))
    scl = rng.uniform(-1.0, 1.0, (n_id, n_img))
    glasses = rng.random((n_id, n_img)) < GLASSES_PROB
    glasses_col = rng.uniform(10.0, 90.0, (n_id, n_img, 3))
    bright = rng.uniform(0.82, 1.12, (n_id, n_img))
    light_dir = rng.integers(0, 8, (n_id, n_img))  # multiples of 45 deg
    light_amt = rng.uniform(0.0, 0.35, (n_id, n_img))
    bg1 = rng.uniform(25.0, 230.0, (n_id, n_img, 3))
    bg2 = rng.uniform(25.0, 230.0, (n_id, n_img, 3))
    bg_dir = rng.integers(0, 8, (n_id, n_img))  # multiples of 45 deg (these compress well in PNG)

    w_smile, w_eye, w_brow = 0.35, 0.45, 0.55  # share of identity-level variance (std stays 1)
    identities, images = [], []
    for i in range(n_id):
        s = shape[i]
        jaw_n = min(JAW_N_RANGE[1], max(JAW_N_RANGE[0], JAW_N_MEDIAN * math.exp(JAW_N_LOG_PER_SD * float(id_lat[i, 3]))))
        skin = np.clip(_lerp(SKIN_LIGHT, SKIN_DARK, float(skin_t[i])) + skin_jit[i], 0, 255)
        ident = {
            "identity": f"id{i:0{max(2, len(str(n_id - 1)))}d}",
            "W": min(0.29, max(0.24, 0.265 + 0.010 * float(s[0]))),
            "Hu": 0.40 + 0.008 * float(np.clip(s[1], -2, 2)),
            "Hl": 0.335 + 0.008 * float(np.clip(s[2], -2, 2)),
            "eye_sep": 0.115 + 0.006 * float(np.clip(s[3], -2, 2)),
            "eye_a": 0.062 + 0.003 * float(np.clip(s[4], -2, 2)),
            "mouth_w": 0.105 + 0.007 * float(np.clip(s[5], -2, 2)),
            "nose_w": 0.045 + 0.004 * float(np.clip(s[6], -2, 2)),
            "nose_len": 0.11 + 0.006 * float(np.clip(s[7], -2, 2)),
            "jaw_n": jaw_n,
            "jaw_width": _superellipse_jaw_width(jaw_n),
            "skin": skin,
            "skin_tone": float(skin_t[i]),
            "hair_style": int(hair_style[i]),
            "hair": HAIR_COLOURS[hair_col[i]],
            "hairline": float(hairline[i]),
            "iris": IRIS_COLOURS[iris_col[i]],
            "shirt": shirt[i],
        }
        identities.append(ident)
        wid = max(2, len(str(n_img - 1)))
        for j in range(n_img):
            sm = w_smile * id_lat[i, 0] + math.sqrt(1 - w_smile**2) * expr[i, j, 0]
            ey = w_eye * id_lat[i, 1] + math.sqrt(1 - w_eye**2) * expr[i, j, 1]
            br = w_brow * id_lat[i, 2] + math.sqrt(1 - w_brow**2) * expr[i, j, 2]
            images.append(
                {
                    "image": f"{ident['identity']}_{j:0{wid}d}.png",
                    "id_index": i,
                    # geometry the drivers map to (all monotone in the latent)
                    "smile": float(np.clip(SMILE_PER_SD * sm, -SMILE_MAX, SMILE_MAX)),  # mouth sag / mouth half-width
                    "eye_openness": float(np.clip(EYE_OPENNESS_MEAN + EYE_OPENNESS_PER_SD * ey, *EYE_OPENNESS_RANGE)),  # eye height / width
                    "brow_angle": float(np.clip(BROW_DEG_PER_SD * br, -BROW_MAX_DEG, BROW_MAX_DEG)),  # deg, + = inner ends raised
                    "jaw_width": ident["jaw_width"],
                    "glasses": int(glasses[i, j]),
                    "dx": float(shift[i, j, 0]) * MAX_SHIFT_PX_AT_128 * size / 128.0,
                    "dy": float(shift[i, j, 1]) * MAX_SHIFT_PX_AT_128 * size / 128.0,
                    "rotation": float(rot[i, j]) * MAX_ROTATION_DEG,
                    "scale": 1.0 + float(scl[i, j]) * MAX_SCALE_DEV,
                    "brightness": float(bright[i, j]),
                    "light_dir": float(light_dir[i, j]) * math.pi / 4,
                    "light_amount": float(light_amt[i, j]),
                    "glasses_colour": glasses_col[i, j],
                    "bg1": bg1[i, j],
                    "bg2": bg2[i, j],
                    "bg_dir": float(bg_dir[i, j]) * math.pi / 4,
                }
            )
    return identities, images


# --------------------------------------------------------------------------------------------
# canonical geometry (units: fraction of the image side, origin = face centre, y down)


def _face_outline(ident) -> np.ndarray:
    """Closed outline: upper half an ellipse, lower half a superellipse (exponent = jaw_n)."""
    W, Hu, Hl, n = ident["W"], ident["Hu"], ident["Hl"], ident["jaw_n"]
    pts = []
    m = 90
    for k in range(m + 1):  # lower half, from image-left ear level through the chin to the right
        t = math.pi - math.pi * k / m
        c, s = math.cos(t), math.sin(t)
        x = math.copysign(math.pow(abs(c), 2.0 / n), c) * W
        y = math.pow(abs(s), 2.0 / n) * Hl
        pts.append((x, y))
    for k in range(1, m):  # upper half, from the right ear level over the top back to the left
        t = math.pi * k / m
        pts.append((W * math.cos(t), -Hu * math.sin(t)))
    return np.array(pts)


def _resample(poly: np.ndarray, n: int) -> np.ndarray:
    """n points evenly spaced by arc length along an open polyline."""
    seg = np.sqrt(((poly[1:] - poly[:-1]) ** 2).sum(axis=1))
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    targets = cum[-1] * np.arange(n) / (n - 1)
    x = np.interp(targets, cum, poly[:, 0])
    y = np.interp(targets, cum, poly[:, 1])
    return np.stack([x, y], axis=1)


def _ellipse(cx, cy, a, b) -> np.ndarray:
    return np.stack([cx + a * _CIRCLE[:, 0], cy + b * _CIRCLE[:, 1]], axis=1)


def _brow(ident, img, side: int) -> np.ndarray:
    """Brow centre line, 21 points from inner to outer end.  side=+1 image right, -1 image left."""
    inner, outer, yc, arch = 0.045, 0.205, -0.115, 0.014
    cx = (inner + outer) / 2
    half = (outer - inner) / 2
    a = math.radians(img["brow_angle"])
    ca, sa = math.cos(a), math.sin(a)
    pts = []
    for k in range(21):
        u = k / 20.0  # 0 inner .. 1 outer
        px = -half + 2 * half * u
        py = -arch * (1 - (2 * u - 1) ** 2)
        # rotate so that a positive angle raises the inner end (px < 0 goes up, y decreases)
        rx, ry = px * ca - py * sa, px * sa + py * ca
        pts.append((side * (cx + rx), yc + ry))
    return np.array(pts)


def _mouth(ident, img):
    """Mouth centre line y(x) (parabola; smile > 0 = corners up), plus upper/lower lip outlines."""
    mw = ident["mouth_w"]
    k = img["smile"] * mw  # sag of the middle below the corners
    ym = 0.195
    xs = mw * np.linspace(-1.0, 1.0, 41)
    u = xs / mw
    centre_y = ym + k * (1 - u**2) - k * 2.0 / 3.0
    taper = np.sqrt(np.clip(1 - u**2, 0.0, 1.0))
    upper = centre_y - 0.025 * taper  # upper lip outer edge
    lower = centre_y + 0.032 * taper
    return xs, centre_y, upper, lower


def landmarks_canonical(ident, img) -> np.ndarray:
    """The 68 iBUG/dlib points in the canonical frame, consistent with what `render` draws."""
    P = np.zeros((68, 2))
    # 0-16 jaw line: lower face outline, ear level to ear level, evenly spaced by arc length
    outline = _face_outline(ident)
    P[0:17] = _resample(outline[:91], 17)
    # 17-21 image-left brow (outer -> inner), 22-26 image-right brow (inner -> outer)
    bl = _brow(ident, img, -1)
    br = _brow(ident, img, +1)
    P[17:22] = bl[[20, 15, 10, 5, 0]]
    P[22:27] = br[[0, 5, 10, 15, 20]]
    # 27-30 nose bridge, 31-35 nose bottom (image left -> right)
    nl, nw = ident["nose_len"], ident["nose_w"]
    ytop, ytip = -0.01, -0.01 + nl * 0.86
    for k in range(4):
        P[27 + k] = (0.0, ytop + (ytip - ytop) * k / 3)
    yb = -0.01 + nl
    P[31:36] = [(-nw, yb - 0.016), (-nw / 2, yb - 0.003), (0.0, yb), (nw / 2, yb - 0.003), (nw, yb - 0.016)]
    # 36-41 image-left eye, 42-47 image-right eye
    es, a = ident["eye_sep"], ident["eye_a"]
    b = a * img["eye_openness"]
    ey = -0.01
    yq = b * math.sqrt(1 - 1 / 9)
    for side, base, order in ((-1, 36, "left"), (1, 42, "right")):
        cx = side * es
        outer_c, inner_c = (cx + side * a, ey), (cx - side * a, ey)
        up_o, up_i = (cx + side * a / 3, ey - yq), (cx - side * a / 3, ey - yq)
        lo_o, lo_i = (cx + side * a / 3, ey + yq), (cx - side * a / 3, ey + yq)
        if order == "left":  # 36 outer, 37-38 upper (outer->inner), 39 inner, 40-41 lower (inner->outer)
            P[base : base + 6] = [outer_c, up_o, up_i, inner_c, lo_i, lo_o]
        else:  # 42 inner, 43-44 upper (inner->outer), 45 outer, 46-47 lower (outer->inner)
            P[base : base + 6] = [inner_c, up_i, up_o, outer_c, lo_o, lo_i]
    # 48-59 outer lip, 60-67 inner lip (closed mouth: inner points on the centre line)
    xs, cy, up, lo = _mouth(ident, img)
    idx = lambda frac: int(round((frac + 1) * 20))  # noqa: E731  x = frac * mouth_w -> sample index
    outer_upper = [idx(f) for f in (-1, -2 / 3, -1 / 3, 0, 1 / 3, 2 / 3, 1)]
    outer_lower = [idx(f) for f in (2 / 3, 1 / 3, 0, -1 / 3, -2 / 3)]
    P[48:55] = [(xs[i], up[i]) for i in outer_upper]
    P[55:60] = [(xs[i], lo[i]) for i in outer_lower]
    inner = [idx(f) for f in (-0.9, -1 / 3, 0, 1 / 3, 0.9, 1 / 3, 0, -1 / 3)]
    P[60:68] = [(xs[i], cy[i]) for i in inner]
    return P


def image_landmarks(ident, img, size: int) -> np.ndarray:
    """The 68 points in output pixel coordinates of an image `size` pixels square (as landmarks.csv has them)."""
    return _Pose(img, size).out(landmarks_canonical(ident, img))


# --------------------------------------------------------------------------------------------
# drawing


class _Pose:
    """Canonical -> output pixel coordinates (pixel centres at integers) and -> supersampled canvas."""

    def __init__(self, img, size: int):
        self.size = size
        th = math.radians(img["rotation"])  # + = counter-clockwise on screen
        self.c, self.s = math.cos(th), math.sin(th)
        self.k = img["scale"] * size
        self.tx = FACE_CENTRE[0] * size - 0.5 + img["dx"]
        self.ty = FACE_CENTRE[1] * size - 0.5 + img["dy"]

    def out(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=float)
        x = self.tx + self.k * (p[:, 0] * self.c + p[:, 1] * self.s)
        y = self.ty + self.k * (-p[:, 0] * self.s + p[:, 1] * self.c)
        return np.stack([x, y], axis=1)

    def hi(self, p: np.ndarray) -> list:
        q = self.out(p) * SUPERSAMPLE + (SUPERSAMPLE - 1) / 2.0
        return [(float(x), float(y)) for x, y in q]

    def w(self, width: float) -> int:
        """A canonical stroke width in canvas pixels."""
        return max(1, int(round(width * self.k * SUPERSAMPLE)))


def _rgb(c) -> tuple:
    return tuple(int(round(float(v))) for v in np.clip(c, 0, 255))


def _stroke(draw: ImageDraw.ImageDraw, pts: list, width: int, fill, closed: bool = False):
    if closed:
        pts = pts + pts[:1]
    draw.line(pts, fill=fill, width=width, joint="curve")
    r = width / 2.0
    ends = [] if closed else [pts[0], pts[-1]]
    for x, y in ends:  # round caps
        draw.ellipse([x - r, y - r, x + r, y + r], fill=fill)


def _linear_field(n: int, angle: float) -> np.ndarray:
    """(x-0.5)cos + (y-0.5)sin on an n x n grid of pixel centres in [0, 1]."""
    t = (np.arange(n, dtype=float) + 0.5) / n - 0.5
    return t[None, :] * math.cos(angle) + t[:, None] * math.sin(angle)


def render(ident, img, size: int) -> Image.Image:
    S = size * SUPERSAMPLE
    pose = _Pose(img, size)
    # the person is drawn on a transparent canvas, lit, then composited over the background
    canvas = Image.new("RGBA", (S, S), (0, 0, 0, 0))
    d = ImageDraw.Draw(canvas)

    skin = ident["skin"]
    W, Hu, Hl = ident["W"], ident["Hu"], ident["Hl"]
    hair = ident["hair"]
    # shoulders and neck
    sh = _ellipse(0.0, Hl + 0.30, 0.50, 0.22)
    d.polygon(pose.hi(sh), fill=_rgb(ident["shirt"]))
    neck = np.array([[-0.115, 0.1], [0.115, 0.1], [0.125, Hl + 0.16], [-0.125, Hl + 0.16]])
    d.polygon(pose.hi(neck), fill=_rgb(skin * 0.82))
    # long hair behind the head
    if ident["hair_style"] == 2:
        back = [(W + 0.05) * math.cos(math.pi + math.pi * k / 36) for k in range(37)]
        back = [(x, -(Hu + 0.035) * math.sin(math.pi * k / 36)) for k, x in enumerate(back)]
        back += [(W + 0.06, 0.24), (-(W + 0.06), 0.24)]
        d.polygon(pose.hi(np.array(back)), fill=_rgb(hair * 0.85))
    else:  # ears
        for side in (-1, 1):
            ear = _ellipse(side * (W - 0.005), 0.015, 0.032, 0.062)
            d.polygon(pose.hi(ear), fill=_rgb(skin * 0.9))
    # face
    outline = _face_outline(ident)
    face_pts = pose.hi(outline)
    d.polygon(face_pts, fill=_rgb(skin))
    _stroke(d, face_pts, pose.w(0.010), _rgb(skin * 0.62), closed=True)
    # hair cap: head region (slightly enlarged) above the hairline
    if ident["hair_style"] > 0:
        cap = Image.new("L", (S, S), 0)
        dc = ImageDraw.Draw(cap)
        head = np.array([(x * 1.06, y * 1.06 - 0.01) for x, y in outline if y < 0.02])
        dc.polygon(pose.hi(head), fill=255)
        above = Image.new("L", (S, S), 0)
        da = ImageDraw.Draw(above)
        yh, yt = ident["hairline"], -0.07
        line = [(x, yh + (yt - yh) * (abs(x) / W) * (abs(x) / W) * (abs(x) / W) * (abs(x) / W))
                for x in np.linspace(-W - 0.06, W + 0.06, 41)]
        line = [(float(x), min(y, 0.0)) for x, y in line]
        poly = line + [(W + 0.06, -0.9), (-W - 0.06, -0.9)]
        da.polygon(pose.hi(np.array(poly)), fill=255)
        mask = ImageChops.multiply(cap, above)
        canvas.paste(_rgb(hair) + (255,), (0, 0), mask)
        d = ImageDraw.Draw(canvas)
    # brows (darker of hair colour and darkened skin so they always contrast with the skin)
    brow_col = np.minimum(hair * 0.8, skin * 0.32)
    for side in (-1, 1):
        _stroke(d, pose.hi(_brow(ident, img, side)), pose.w(BROW_WIDTH), _rgb(brow_col))
    # eyes: sclera, iris + pupil clipped to the eye, outline
    es, a = ident["eye_sep"], ident["eye_a"]
    b = a * img["eye_openness"]
    ey = -0.01
    for side in (-1, 1):
        eye = pose.hi(_ellipse(side * es, ey, a, b))
        d.polygon(eye, fill=(246, 244, 238))
        # iris, pupil and catch-light drawn on a crop around the eye and pasted through the eye shape
        x0 = int(math.floor(min(p[0] for p in eye))) - 2
        y0 = int(math.floor(min(p[1] for p in eye))) - 2
        x1 = int(math.ceil(max(p[0] for p in eye))) + 3
        y1 = int(math.ceil(max(p[1] for p in eye))) + 3
        shift = lambda pts: [(x - x0, y - y0) for x, y in pts]  # noqa: E731
        m = Image.new("L", (x1 - x0, y1 - y0), 0)
        ImageDraw.Draw(m).polygon(shift(eye), fill=255)
        layer = canvas.crop((x0, y0, x1, y1))
        dl = ImageDraw.Draw(layer)
        r = a * 0.55
        dl.polygon(shift(pose.hi(_ellipse(side * es, ey, r, r))), fill=_rgb(ident["iris"]))
        dl.polygon(shift(pose.hi(_ellipse(side * es, ey, r * 0.5, r * 0.5))), fill=(8, 8, 10))
        catch = _ellipse(side * es + r * 0.35, ey - r * 0.35, r * 0.2, r * 0.2)
        dl.polygon(shift(pose.hi(catch)), fill=(250, 250, 250))
        canvas.paste(layer, (x0, y0), m)
        d = ImageDraw.Draw(canvas)
        _stroke(d, eye, pose.w(0.012), DARK_LINE, closed=True)
        # heavier upper lid
        upper = _ellipse(side * es, ey, a, b)[N_CIRCLE // 2 :]  # angles pi..2pi: the upper half
        upper = np.vstack([upper, [[side * es + a, ey]]])
        _stroke(d, pose.hi(upper), pose.w(0.016), DARK_LINE)
    # nose: shading wedge, side line, nostrils, base curve
    nl, nw = ident["nose_len"], ident["nose_w"]
    yb = -0.01 + nl
    wedge = np.array(
        [[-0.012, 0.0], [0.012, 0.0], [nw * 0.8, yb - 0.035], [nw, yb - 0.016], [0.0, yb], [-nw, yb - 0.016], [-nw * 0.8, yb - 0.035]]
    )
    d.polygon(pose.hi(wedge), fill=_rgb(skin * 0.84))
    _stroke(d, pose.hi(np.array([[-0.016, 0.0], [-0.022, 0.04], [-nw * 0.75, yb - 0.04]])), pose.w(0.007), _rgb(skin * 0.62))
    for side in (-1, 1):
        ala = np.array([[side * nw * 0.78, yb - 0.045], [side * nw * 1.05, yb - 0.03], [side * nw, yb - 0.016]])
        _stroke(d, pose.hi(ala), pose.w(0.009), _rgb(skin * 0.5))
        d.polygon(pose.hi(_ellipse(side * nw * 0.45, yb - 0.008, 0.013, 0.0075)), fill=_rgb(skin * 0.3))
    base = np.array([[-nw, yb - 0.016], [-nw / 2, yb - 0.003], [0.0, yb], [nw / 2, yb - 0.003], [nw, yb - 0.016]])
    _stroke(d, pose.hi(base), pose.w(0.010), _rgb(skin * 0.45))
    # mouth: lips + dark centre line
    xs, cy, up, lo = _mouth(ident, img)
    lips = np.vstack([np.stack([xs, up], 1), np.stack([xs[::-1], lo[::-1]], 1)])
    lip_col = _lerp(skin, LIP_RED, 0.6) * (0.75 + 0.25 * (1 - ident["skin_tone"]))
    d.polygon(pose.hi(lips), fill=_rgb(lip_col))
    _stroke(d, pose.hi(np.stack([xs, cy], 1)), pose.w(MOUTH_LINE_WIDTH), (62, 16, 24))
    # glasses (occluder): tinted lenses, frames, bridge and arms
    if img["glasses"]:
        fc = _rgb(img["glasses_colour"])
        fa, fb, fy = a + 0.03, 0.052, ey - 0.004
        lens = Image.new("RGBA", (S, S), (0, 0, 0, 0))
        dl = ImageDraw.Draw(lens)
        for side in (-1, 1):
            dl.polygon(pose.hi(_ellipse(side * es, fy, fa, fb)), fill=(180, 210, 235, 60))
        canvas = Image.alpha_composite(canvas, lens)
        d = ImageDraw.Draw(canvas)
        for side in (-1, 1):
            _stroke(d, pose.hi(_ellipse(side * es, fy, fa, fb)), pose.w(0.014), fc, closed=True)
            arm = np.array([[side * (es + fa), fy - 0.01], [side * (W - 0.004), fy - 0.02]])
            _stroke(d, pose.hi(arm), pose.w(0.012), fc)
        bridge = np.array([[-(es - fa), fy - 0.008], [0.0, fy - 0.02], [es - fa, fy - 0.008]])
        _stroke(d, pose.hi(bridge), pose.w(0.012), fc)

    small = np.asarray(canvas.resize((size, size), Image.LANCZOS), dtype=float)
    # lighting on the person: brightness multiplier times a linear gradient
    light = img["brightness"] * (1.0 + img["light_amount"] * 2.0 * _linear_field(size, img["light_dir"]))
    person = small[:, :, :3] * light[:, :, None]
    alpha = small[:, :, 3:] / 255.0
    # background: linear gradient between two colours (direction a multiple of 45 degrees)
    g = np.clip(_linear_field(size, img["bg_dir"]) * math.sqrt(2.0) + 0.5, 0.0, 1.0)[:, :, None]
    bg = img["bg1"][None, None, :] * (1.0 - g) + img["bg2"][None, None, :] * g
    arr = np.clip(np.rint(bg * (1.0 - alpha) + person * alpha), 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


# --------------------------------------------------------------------------------------------
# ratings and files


def _fmt(v: float, nd: int) -> str:
    s = f"{v:.{nd}f}"
    return "0." + "0" * nd if s == "-0." + "0" * nd else s


def compute_ratings(params: dict, rng: np.random.Generator, raters_per_group: int = RATERS_PER_GROUP) -> dict:
    """{(group, trait): (raters, images) integer ratings on 1-7}, each simulated rater with their
    own weights around the group's planted ones, own leniency and own noise."""
    terms = np.stack([params["smile_z"], params["eye_openness_z"], params["jaw_width_z"], -params["brow_angle_z"]])
    term_names = ("smile_z", "eye_openness_z", "jaw_width_z", "brow_lowering_z")
    out = {}
    for g in GROUPS:
        leniency = rng.standard_normal(raters_per_group) * RATER_LENIENCY_SD
        for t in TRAITS:
            weights = np.array([WEIGHTS[(g, t)].get(k, 0.0) for k in term_names])
            spread = rng.standard_normal((raters_per_group, len(weights))) * RATER_WEIGHT_SD * (weights != 0)
            rater_weights = weights + spread
            noise = rng.standard_normal((raters_per_group, terms.shape[1])) * RATER_NOISE_SD
            raw = RATING_CENTRE + leniency[:, None] + RATING_GAIN * rater_weights @ terms + noise
            out[(g, t)] = np.rint(np.clip(raw, RATING_MIN, RATING_MAX)).astype(int)
    return out


def rater_names(group: str, raters_per_group: int = RATERS_PER_GROUP) -> list[str]:
    return [f"{group}{r + 1:02d}" for r in range(raters_per_group)]


def _write_text(path: Path, lines: list) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(lines) + "\n")


def _readme(seed, n_identities, images_per_identity, size, n_glasses) -> str:
    n = n_identities * images_per_identity
    cmd = "python -m facetraits.demo --out data/demo"
    if (seed, n_identities, images_per_identity, size) != (0, 50, 10, 128):
        cmd += f" --seed {seed} --identities {n_identities} --images-per-identity {images_per_identity} --size {size}"
    return f"""# Synthetic demo data set (planted ground truth)

**These data are SYNTHETIC.** The faces are drawn cartoons and the "ratings" are computed from a
formula written in `facetraits/demo.py`. The group labels `ASD` and `NT` are only names for two
simulated rater groups with different planted weights; nothing here says anything about real
autistic or non-autistic people, about any real rater group, or about how real people judge faces.
The data exist so the pipeline (training, LRP heatmaps, relevance per face region) can be run end
to end and checked against a known answer.

## How it was made

    {cmd}

Deterministic: the same command gives byte-identical files (`numpy.random.default_rng(seed)` for
the faces, `default_rng([seed, 1])` for the raters,
PNGs without metadata, fixed float formats). Settings: seed {seed}, {n_identities} identities x
{images_per_identity} images = {n} images of {size}x{size} RGB; {n_glasses} of them with glasses.

Each image is a schematic face drawn at {SUPERSAMPLE}x resolution and downsampled with LANCZOS:
face oval, jaw, two eyes (sclera, iris, pupil, lids), two thick brows, nose, lips with a mouth line,
ears or hair, neck and shoulders.

## Drivers (the four parameters the ratings depend on)

| parameter | level | drawn as | raw unit in `face_parameters.csv` |
|---|---|---|---|
| `smile` | image (35% identity) | curvature of the mouth | sag of the mouth middle below its corners / mouth half-width; + = smile (corners up), - = frown |
| `eye_openness` | image (45% identity) | height of both eye openings | eye height / eye width |
| `brow_angle` | image (55% identity) | tilt of both brows | degrees; + = inner ends raised (worried), - = inner ends lowered (frown) |
| `jaw_width` | identity only | squareness of the lower face (superellipse exponent) | half-width of the lower face 3/4 of the way from ear level to chin / maximum half-width |

("x% identity" = share of the latent variance that is an identity baseline; the rest varies from
image to image like an expression.) Each raw parameter is z-scored over the whole data set
(mean 0, sd 1, population sd) into `smile_z`, `eye_openness_z`, `brow_angle_z`, `jaw_width_z`.

## Ground truth (ratings)

{RATERS_PER_GROUP} simulated raters per group (`ASD01`...`ASD{RATERS_PER_GROUP}`, `NT01`...`NT{RATERS_PER_GROUP}`) rate every image on both
traits. Rater r of a group:

    rating = round(clip(4 + L_r + 1.2 * S_r + e, 1, 7))
    S_r = sum_k (w_k + d_rk) * term_k,   d_rk ~ N(0, {RATER_WEIGHT_SD}^2) for the group's planted terms only
    L_r ~ N(0, {RATER_LENIENCY_SD}^2) (the rater's leniency, same for both traits),   e ~ N(0, {RATER_NOISE_SD}^2) per rating

with the group's planted weights w_k:

| group | trait | sum_k w_k * term_k |
|---|---|---|
| ASD | warm   | 0.80 * smile_z + 0.20 * eye_openness_z |
| NT  | warm   | 0.25 * smile_z + 0.75 * eye_openness_z |
| ASD | strong | 0.75 * jaw_width_z + 0.25 * (-brow_angle_z) |
| NT  | strong | 0.25 * jaw_width_z + 0.75 * (-brow_angle_z) |

So warmth goes with smiling and open eyes, strength with a wide jaw and lowered (frowning) brows;
the simulated `ASD` group weights the lower face (mouth, jaw) more and the simulated `NT` group the
upper face (eyes, brows) more. A model that learned the `ASD` ratings is therefore expected to put
more relevance on the mouth (warm) and the jaw line (strong), one that learned the `NT` ratings more
on the eyes (warm) and brows (strong). (The jaw line lies in the `jaw` region, a band along the jaw-line
landmarks, outside the eye/brow/nose/mouth regions.)

## Nuisance factors (unrelated to the ratings)

- identity: skin tone, face width and height, eye spacing and size, mouth width, nose size, hair
  (bald / short / long, 6 colours), iris colour, shirt colour;
- image: translation up to +-{MAX_SHIFT_PX_AT_128:g} px (at 128 px; scales with the size), rotation up to
  +-{MAX_ROTATION_DEG:g} deg, scale +-{MAX_SCALE_DEV * 100:g}%; lighting of the person: multiplier
  `brightness * (1 + 2 * light_amount * t)` with `brightness` in 0.82-1.12, `light_amount` in 0-0.35 and
  `t` the signed distance from the image centre (in image sides) along one of 8 directions;
  background: a two-colour linear gradient along one of 8 directions; glasses (frames and tinted
  lenses over the eyes) on ~{GLASSES_PROB * 100:g}% of images.

## Files

- `images/idNN_MM.png`: identity `idNN`, image `MM`. All CSVs refer to images by this file name
  (relative to `images/`).
- `ratings.csv`: `image,identity,group,trait,rater,rating`, one row per image x group (`ASD`, `NT`) x
  trait (`warm`, `strong`) x rater = {n * 4 * RATERS_PER_GROUP} rows; integer ratings on the 1-7 scale.
  The scripts train on each group's mean rating per image and compare groups by permuting raters.
- `landmarks.csv`: `image,point,x,y`, the 68 iBUG/dlib points (0-16 jaw line, 17-21 brow on the
  image left, 22-26 brow on the image right, 27-30 nose bridge, 31-35 nose bottom, 36-41 eye on the
  image left, 42-47 eye on the image right, 48-59 outer lip, 60-67 inner lip) per image, in pixels
  of the saved image after the pose transform: x = column, y = row, the centre of a pixel at
  integer coordinates. Eye points lie on the drawn eye outline, brow points on the centre line of
  the drawn brow, mouth points on the drawn lips (inner points on the mouth line; mouths are
  closed), jaw points on the lower face outline from ear level to ear level.
- `face_parameters.csv`: one row per image: `image,identity`, the raw drivers
  `smile,eye_openness,brow_angle,jaw_width`, `glasses` (0/1), pose `dx,dy` (pixels),
  `rotation` (degrees, + = counter-clockwise on screen), `scale`, the drivers' z-scores
  `smile_z,eye_openness_z,brow_angle_z,jaw_width_z` (computed before rounding to 4 decimals), and
  the other nuisance values
  `brightness,light_amount,skin_tone,hair_style` (0 bald, 1 short, 2 long).
"""


def generate(out_dir, seed: int = 0, n_identities: int = 50, images_per_identity: int = 10, size: int = 128) -> None:
    """Write images/, ratings.csv, landmarks.csv, face_parameters.csv and README.md to `out_dir`."""
    if n_identities < 1 or images_per_identity < 1:
        raise ValueError("need at least one identity and one image per identity")
    if size < 32:
        raise ValueError(f"size must be at least 32 pixels, got {size}")
    out = Path(out_dir)
    img_dir = out / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    identities, images = sample_parameters(rng, n_identities, images_per_identity, size)

    raw = {k: np.array([im[k] for im in images]) for k in DRIVERS}
    params = {f"{k}_z": _zscore(raw[k]) for k in DRIVERS}
    ratings = compute_ratings(params, np.random.default_rng([seed, 1]))  # own stream: images do not depend on it

    # drop images left over from an earlier, larger generation into the same folder
    keep = {im["image"] for im in images}
    for old in img_dir.glob("id*_*.png"):
        if old.name not in keep:
            old.unlink()

    lm_lines = ["image,point,x,y"]
    for im in images:
        ident = identities[im["id_index"]]
        render(ident, im, size).save(img_dir / im["image"], format="PNG", compress_level=6, compress_type=1)
        pts = image_landmarks(ident, im, size)
        for p, (x, y) in enumerate(pts):
            lm_lines.append(f"{im['image']},{p},{_fmt(x, 2)},{_fmt(y, 2)}")

    cols = ["image", "identity", "smile", "eye_openness", "brow_angle", "jaw_width", "glasses", "dx", "dy",
            "rotation", "scale", "smile_z", "eye_openness_z", "brow_angle_z", "jaw_width_z",
            "brightness", "light_amount", "skin_tone", "hair_style"]
    fp_lines = [",".join(cols)]
    rt_lines = ["image,identity,group,trait,rater,rating"]
    for n, im in enumerate(images):
        ident = identities[im["id_index"]]
        vals = [im["image"], ident["identity"]]
        vals += [_fmt(im[k], 4) for k in DRIVERS]
        vals += [str(im["glasses"])]
        vals += [_fmt(im[k], 4) for k in ("dx", "dy", "rotation", "scale")]
        vals += [_fmt(params[f"{k}_z"][n], 4) for k in DRIVERS]
        vals += [_fmt(im["brightness"], 4), _fmt(im["light_amount"], 4), _fmt(ident["skin_tone"], 4)]
        vals += [str(ident["hair_style"])]
        fp_lines.append(",".join(vals))
        for g in GROUPS:
            for t in TRAITS:
                rt_lines += [f"{im['image']},{ident['identity']},{g},{t},{rater},{rating}"
                             for rater, rating in zip(rater_names(g), ratings[(g, t)][:, n])]

    _write_text(out / "face_parameters.csv", fp_lines)
    _write_text(out / "ratings.csv", rt_lines)
    _write_text(out / "landmarks.csv", lm_lines)
    n_glasses = sum(im["glasses"] for im in images)
    with open(out / "README.md", "w", encoding="utf-8", newline="\n") as f:
        f.write(_readme(seed, n_identities, images_per_identity, size, n_glasses))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m facetraits.demo",
        description="Generate the deterministic SYNTHETIC demo data set (cartoon faces, planted ratings).",
    )
    ap.add_argument("--out", required=True, help="output folder, e.g. data/demo")
    ap.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    ap.add_argument("--identities", type=int, default=50, help="number of identities (default 50)")
    ap.add_argument("--images-per-identity", type=int, default=10, help="images per identity (default 10)")
    ap.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    args = ap.parse_args(argv)
    generate(args.out, seed=args.seed, n_identities=args.identities,
             images_per_identity=args.images_per_identity, size=args.size)
    print(f"wrote {args.identities * args.images_per_identity} images and CSVs to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
