"""The synthetic landscape and weather behind the sample data, as pure numpy (no I/O).

Everything is a function of UTM pixel-centre coordinates and the acquisition date, never of the
tile, so two overlapping tiles show identical pixels for the same date. See ``s2`` for the story
the scene tells and ``TRUTH`` for the values tests may rely on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "BANDS",
    "CLOUD_BAND_OFFSET",
    "EPSG",
    "FIELD_BBOX",
    "FIELD_DN",
    "FIELD_MARGIN",
    "LAKE_BBOX",
    "LAKE_DN",
    "OFFSET",
    "ORIGIN_X",
    "ORIGIN_Y",
    "SCALE",
    "SCL_CLASSES",
    "SHADOW_FACTOR",
    "SHADOW_OFFSET",
    "SOIL_REFLECTANCE",
    "TILE_OVERLAP",
    "Acquisition",
    "Blob",
    "Raster",
    "Tile",
    "acquisitions",
    "render",
    "tile_names",
    "weather",
]

EPSG = 32632
ORIGIN_X = 682000.0  # upper-left corner of tile 0 (UTM 32N metres)
ORIGIN_Y = 5164000.0
TILE_OVERLAP = 1200.0  # adjacent tiles overlap by this many metres, like real MGRS tiles (9.8 km there)

BANDS = ("B02", "B03", "B04", "B08")
SCALE = 0.0001  # processing baseline >= 04.00: reflectance = DN * SCALE + OFFSET
OFFSET = -0.1
_DN_OFFSET = 1000  # -OFFSET / SCALE, as an exact integer

# (minx, miny, maxx, maxy) in UTM metres; a pixel belongs to a box if its centre lies inside.
FIELD_BBOX = (684000.0, 5156000.0, 686000.0, 5158000.0)
FIELD_DN = {"B02": 1300, "B03": 1600, "B04": 1400, "B08": 5000}  # 0.03 0.06 0.04 0.40 on every date
FIELD_MARGIN = 200.0  # the trap cloud covers the field plus at least this much all round
LAKE_BBOX = (689000.0, 5160000.0, 690500.0, 5161500.0)
LAKE_DN = {"B02": 1500, "B03": 1400, "B04": 1300, "B08": 1100}  # 0.05 0.04 0.03 0.01
SOIL_REFLECTANCE = {"B02": 0.08, "B03": 0.10, "B04": 0.12, "B08": 0.20}  # mean; ±0.02 in space
CLOUD_BAND_OFFSET = {"B02": 0.02, "B03": 0.01, "B04": 0.0, "B08": -0.0}  # clouds are a little blue
CIRRUS_ADD = {"B02": 0.06, "B03": 0.05, "B04": 0.05, "B08": 0.04}  # thin cirrus brightens the ground
SHADOW_OFFSET = (-600.0, -600.0)  # cloud shadow = the cloud shifted by (dx, dy) metres
SHADOW_FACTOR = 0.3  # shadowed reflectance = ground reflectance × this

SCL_CLASSES = {
    0: ("no_data", "No data"),
    1: ("saturated_or_defective", "Saturated or defective"),
    2: ("dark_area_pixels", "Dark area pixels / topographic shadows"),
    3: ("cloud_shadows", "Cloud shadows"),
    4: ("vegetation", "Vegetation"),
    5: ("not_vegetated", "Not vegetated (bare soil)"),
    6: ("water", "Water"),
    7: ("unclassified", "Unclassified"),
    8: ("cloud_medium_probability", "Cloud, medium probability"),
    9: ("cloud_high_probability", "Cloud, high probability"),
    10: ("thin_cirrus", "Thin cirrus"),
    11: ("snow", "Snow or ice"),
}

# Synthetic MGRS 100-km column letters: the real neighbours P, Q, R of zone 32, then on through the
# MGRS alphabet (no I, O). Tiles past 32TRS do not exist on Earth at these coordinates.
_COLUMNS = "PQRSTUVWXYZABCDEFGHJKLMN"
_DAYS = (5, 15, 25)
_TIME = dt.time(10, 15, 59, tzinfo=dt.UTC)

Role = Literal["large-cloud", "trap", "fair", "field-shadow"]


def tile_names(count: int) -> list[str]:
    """``["32TPS", "32TQS", ...]``; at most 24 (the letters run out).

    >>> tile_names(3)
    ['32TPS', '32TQS', '32TRS']
    """
    if not 1 <= count <= len(_COLUMNS):
        raise ValueError(f"tiles must be between 1 and {len(_COLUMNS)}, got {count}")
    return [f"32T{c}S" for c in _COLUMNS[:count]]


@dataclass(frozen=True)
class Tile:
    """One square tile of the grid; tile k sits ``k × (extent - TILE_OVERLAP)`` east of tile 0."""

    index: int
    name: str
    size: int
    resolution: float

    @property
    def extent(self) -> float:
        return self.size * self.resolution

    @property
    def left(self) -> float:
        return ORIGIN_X + self.index * (self.extent - TILE_OVERLAP)

    @property
    def top(self) -> float:
        return ORIGIN_Y

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) in UTM metres."""
        return (self.left, self.top - self.extent, self.left + self.extent, self.top)

    @property
    def transform(self) -> tuple[float, float, float, float, float, float]:
        """GDAL-order affine coefficients (a, b, c, d, e, f) as STAC ``proj:transform`` lists them."""
        return (self.resolution, 0.0, self.left, 0.0, -self.resolution, self.top)

    def centres(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Pixel-centre x of every column and y of every row."""
        steps = (np.arange(self.size, dtype=np.float64) + 0.5) * self.resolution
        return self.left + steps, self.top - steps


@dataclass(frozen=True)
class Acquisition:
    """One date of the time series and the weather role it plays."""

    date: dt.datetime
    month_index: int
    slot: int  # 0, 1, 2 = day 05, 15, 25
    role: Role
    swath_edge: bool  # tiles east of tile 1's east edge lie outside the swath (nodata)

    @property
    def stamp(self) -> str:
        """``20240615T101559``, as in product ids."""
        return self.date.strftime("%Y%m%dT%H%M%S")


def acquisitions(start: str, months: int) -> list[Acquisition]:
    """Three dates a month (days 05, 15, 25 at 10:15:59Z), each with its weather role.

    Slot 0 of every month has a large cloud away from the field; slot 1 of the first month is the
    trap (field under cloud, scene almost clear); slot 2 of later months has a cloud whose shadow
    falls on the field. Slot 2 of the first month has the swath edge in tile 1.

    >>> [(a.date.date().isoformat(), a.role) for a in acquisitions("2024-06", 1)]
    [('2024-06-05', 'large-cloud'), ('2024-06-15', 'trap'), ('2024-06-25', 'fair')]
    """
    year, month = (int(part) for part in start.split("-"))
    result = []
    for m in range(months):
        y, mo = divmod(month - 1 + m, 12)
        for slot, day in enumerate(_DAYS):
            date = dt.datetime.combine(dt.date(year + y, mo + 1, day), _TIME)
            role: Role
            if slot == 0:
                role = "large-cloud"
            elif slot == 1:
                role = "trap" if m == 0 else "fair"
            else:
                role = "fair" if m == 0 else "field-shadow"
            result.append(Acquisition(date, m, slot, role, swath_edge=(m == 0 and slot == 2)))
    return result


@dataclass(frozen=True)
class Blob:
    """A cloud (or cirrus) shape: a wobbly super-ellipse.

    ``rho`` is 0 at the centre and 1 on the outline; clouds are SCL 9 inside ``rho <= 0.8`` and
    SCL 8 on the rim, cirrus is SCL 10 throughout.
    """

    cx: float
    cy: float
    radius: float  # semi-axis across the blob, metres
    kind: Literal["cloud", "cirrus"] = "cloud"
    ratio: float = 1.0  # semi-axis along the blob = radius × ratio
    angle: float = 0.0  # radians, direction of the long axis from +x
    power: float = 2.0  # 2 = ellipse, larger = squarer
    wobble: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)  # a2, phase2, a3, phase3

    @property
    def reach(self) -> float:
        """Upper bound of the distance from the centre to the outline."""
        a2, _, a3, _ = self.wobble
        # a super-ellipse with power >= 2 lies inside the circle of radius semi-axis × sqrt(2)
        return self.radius * self.ratio * (1 + abs(a2) + abs(a3)) * (math.sqrt(2) if self.power > 2 else 1)

    def shifted(self, dx: float, dy: float) -> Blob:
        return Blob(
            self.cx + dx,
            self.cy + dy,
            self.radius,
            self.kind,
            self.ratio,
            self.angle,
            self.power,
            self.wobble,
        )

    def rho(self, x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
        """Normalised distance on the grid ``y[:, None] × x[None, :]``."""
        dx = x[None, :] - self.cx
        dy = y[:, None] - self.cy
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        u = (dx * cos + dy * sin) / (self.radius * self.ratio)
        v = (-dx * sin + dy * cos) / self.radius
        p = self.power
        r = (np.abs(u) ** p + np.abs(v) ** p) ** (1 / p)
        a2, p2, a3, p3 = self.wobble
        if a2 or a3:
            theta = np.arctan2(v, u)
            r = r / (1 + a2 * np.sin(2 * theta + p2) + a3 * np.sin(3 * theta + p3))
        return np.asarray(r, dtype=np.float64)


def _rng(label: str) -> np.random.Generator:
    """A generator seeded from a string, the same on every run and platform (unlike ``hash``)."""
    digest = hashlib.sha256(f"eopack-sample-data/{label}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _box_distance(box: tuple[float, float, float, float], x: float, y: float) -> float:
    dx = max(box[0] - x, 0.0, x - box[2])
    dy = max(box[1] - y, 0.0, y - box[3])
    return math.hypot(dx, dy)


def _keeps_clear(blob: Blob, clearance: float = 300.0) -> bool:
    """True if the blob and its shadow stay ``clearance`` metres away from the field and the lake.

    Cheap bound first; near misses are checked on a 25 m lattice over the box grown by
    ``clearance`` (a blob cannot slip 300 m deep between lattice points).
    """
    shapes = [blob] if blob.kind == "cirrus" else [blob, blob.shifted(*SHADOW_OFFSET)]
    for box in (FIELD_BBOX, LAKE_BBOX):
        for shape in shapes:
            if _box_distance(box, shape.cx, shape.cy) >= shape.reach + clearance:
                continue
            xs = np.arange(box[0] - clearance, box[2] + clearance + 1, 25.0)
            ys = np.arange(box[1] - clearance, box[3] + clearance + 1, 25.0)
            if float(shape.rho(xs, ys).min()) <= 1.0:
                return False
    return True


def _wobble(rng: np.random.Generator, amplitude: float) -> tuple[float, float, float, float]:
    a2, a3 = rng.uniform(0, amplitude, 2)
    p2, p3 = rng.uniform(0, 2 * math.pi, 2)
    return (float(a2), float(p2), float(a3), float(p3))


def weather(acq: Acquisition, tiles: list[Tile]) -> list[Blob]:
    """The clouds and cirrus of one date over the whole grid (a fixed plan plus seeded scatter)."""
    rng = _rng(acq.date.date().isoformat())
    tile0 = tiles[0]
    x_min, x_max = tile0.left, tiles[-1].bounds[2]
    y_min, y_max = tile0.bounds[1], tile0.top
    blobs: list[Blob] = []

    if acq.role == "large-cloud":
        # A cloud deck over the south of tile 0 and east of the field, > 40 % of tile 0.
        jx, jy = rng.uniform(-300, 300, 2)
        south_top = FIELD_BBOX[1] - 700.0
        for cy in np.arange(y_min + 400.0, south_top, 1300.0):
            for cx in np.arange(x_min + 300.0, tile0.bounds[2] + 1500.0, 1300.0):
                blobs.append(
                    Blob(cx + jx, cy + jy, 1000.0 * rng.uniform(0.95, 1.1), wobble=_wobble(rng, 0.1))
                )
        for cy in np.arange(south_top, LAKE_BBOX[1] - 700.0, 1300.0):
            for cx in np.arange(FIELD_BBOX[2] + 2000.0, tile0.bounds[2] + 1500.0, 1300.0):
                blobs.append(
                    Blob(cx + jx, cy + jy, 1000.0 * rng.uniform(0.95, 1.1), wobble=_wobble(rng, 0.1))
                )
        blobs = [b for b in blobs if _keeps_clear(b)]
        # a band of thin cirrus in the north-east, over bare soil
        blobs.append(
            Blob(
                float(tile0.bounds[2] - 1500.0 + jx),
                float(y_max - 1300.0 + jy / 3),
                400.0,
                "cirrus",
                ratio=6.0,
                angle=0.15,
                wobble=_wobble(rng, 0.1),
            )
        )
    elif acq.role == "trap":
        # One squarish cloud over the field and its margin, nothing else in tile 0: a scene filter
        # on eo:cloud_cover lets this date through although the field is hidden.
        fx, fy = (FIELD_BBOX[0] + FIELD_BBOX[2]) / 2, (FIELD_BBOX[1] + FIELD_BBOX[3]) / 2
        blobs.append(Blob(fx, fy, 1650.0, power=3.0, wobble=(0.03, 0.7, 0.0, 0.0)))
    elif acq.role == "field-shadow":
        # A small cloud just north-east of the field whose shadow falls on the field's NE corner.
        blobs.append(Blob(FIELD_BBOX[2] + 700.0, FIELD_BBOX[3] + 700.0, 500.0, wobble=(0.08, 1.0, 0.05, 2.0)))

    # Fair-weather cumulus and the odd cirrus streak, scattered by the date's seed.
    keep_off_tile0 = acq.role == "trap"
    wanted = int(rng.integers(4, 9))
    for _ in range(200):
        if wanted == 0:
            break
        cirrus = rng.random() < 0.15
        blob = Blob(
            float(rng.uniform(x_min, x_max)),
            float(rng.uniform(y_min, y_max)),
            float(rng.uniform(250, 700)) if not cirrus else float(rng.uniform(200, 350)),
            "cirrus" if cirrus else "cloud",
            ratio=1.0 if not cirrus else float(rng.uniform(3, 6)),
            angle=float(rng.uniform(0, math.pi)),
            wobble=_wobble(rng, 0.15),
        )
        if not _keeps_clear(blob):
            continue
        if keep_off_tile0 and blob.cx - blob.reach + SHADOW_OFFSET[0] < tile0.bounds[2] + 500.0:
            continue
        blobs.append(blob)
        wanted -= 1
    return blobs


def _soil_pattern(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
    """Smooth, low-frequency variation in [-1, 1] (wavelengths of 4–13 km, so it compresses)."""
    xx = (x[None, :] - ORIGIN_X) / 1000.0
    yy = (y[:, None] - ORIGIN_Y) / 1000.0
    tau = 2 * math.pi
    s = (
        0.45 * np.sin(tau * xx / 13.1 + 0.7) * np.cos(tau * yy / 8.9 + 0.2)
        + 0.35 * np.sin(tau * (0.6 * xx + 0.8 * yy) / 6.7 + 1.3)
        + 0.20 * np.cos(tau * (0.8 * xx - 0.6 * yy) / 4.3 + 0.4)
    )
    return np.asarray(s, dtype=np.float64)


def _inside(
    box: tuple[float, float, float, float], x: NDArray[np.float64], y: NDArray[np.float64]
) -> NDArray[np.bool_]:
    cols = (x >= box[0]) & (x < box[2])
    rows = (y >= box[1]) & (y < box[3])
    return np.asarray(rows[:, None] & cols[None, :])


def _dn(reflectance: NDArray[np.float64], step: int = 1) -> NDArray[np.int64]:
    """Digital numbers of ``reflectance``, rounded to multiples of ``step`` (before the offset)."""
    return np.asarray(np.rint(reflectance / (SCALE * step)), dtype=np.int64) * step + _DN_OFFSET


@dataclass(frozen=True)
class Raster:
    """One tile on one date: a uint16 array per band and the uint8 SCL."""

    bands: dict[str, NDArray[np.uint16]]
    scl: NDArray[np.uint8]

    @property
    def cloud_cover(self) -> float | None:
        """``eo:cloud_cover`` as 100 × cloud (SCL 8, 9, 10) / valid (SCL != 0), 2 decimals."""
        valid = int(np.count_nonzero(self.scl))
        if valid == 0:
            return None
        cloudy = int(np.count_nonzero(np.isin(self.scl, (8, 9, 10))))
        return round(100.0 * cloudy / valid, 2)


def render(tile: Tile, acq: Acquisition, blobs: list[Blob], swath_edge_x: float | None = None) -> Raster:
    """Paint ground, shadows, cirrus, clouds and the swath edge, in that order, onto ``tile``.

    ``swath_edge_x`` is where the swath edge crosses tile 1's centre line, for dates that have one.
    """
    x, y = tile.centres()
    shape = (tile.size, tile.size)
    field = _inside(FIELD_BBOX, x, y)
    lake = _inside(LAKE_BBOX, x, y)

    # soil gets a little darker or brighter from date to date (moisture), the same everywhere
    moisture = 1.0 + float(_rng(f"moisture/{acq.date.date().isoformat()}").uniform(-0.04, 0.02))
    pattern = _soil_pattern(x, y)
    ground: dict[str, NDArray[np.int64]] = {}
    for band in BANDS:
        # soil in steps of 0.0005 reflectance (5 DN): invisible, and a third smaller on disk
        dn = _dn((SOIL_REFLECTANCE[band] + 0.02 * pattern) * moisture, step=5)
        dn[field] = FIELD_DN[band]
        dn[lake] = LAKE_DN[band]
        ground[band] = dn
    scl = np.full(shape, 5, dtype=np.uint8)
    scl[field] = 4
    scl[lake] = 6

    rho_cloud = np.full(shape, np.inf)
    rho_cirrus = np.full(shape, np.inf)
    rho_shadow = np.full(shape, np.inf)
    for blob in blobs:
        targets = [(blob, rho_cloud if blob.kind == "cloud" else rho_cirrus)]
        if blob.kind == "cloud":
            targets.append((blob.shifted(*SHADOW_OFFSET), rho_shadow))
        for shape_, acc in targets:
            reach = shape_.reach
            cols = np.nonzero((x > shape_.cx - reach) & (x < shape_.cx + reach))[0]
            rows = np.nonzero((y > shape_.cy - reach) & (y < shape_.cy + reach))[0]
            if cols.size == 0 or rows.size == 0:
                continue
            window = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
            np.minimum(acc[window], shape_.rho(x[window[1]], y[window[0]]), out=acc[window])

    shadow = (rho_shadow <= 1) & ~(rho_cloud <= 1)
    cirrus = (rho_cirrus <= 1) & ~(rho_cloud <= 1)
    cloud = rho_cloud <= 1
    scl[shadow] = 3
    scl[cirrus] = 10
    scl[cloud] = 8
    scl[rho_cloud <= 0.8] = 9

    # cloud brightness grows towards the core; quantised to 1/8 steps of rho so it compresses
    thickness = np.clip(1.0 - np.round(rho_cloud * 8) / 8, 0.0, 1.0)
    thin = np.clip(1.0 - np.round(rho_cirrus * 8) / 8, 0.0, 1.0)
    bands: dict[str, NDArray[np.uint16]] = {}
    for band in BANDS:
        dn = ground[band].copy()
        dn[shadow] = (
            np.rint((ground[band][shadow] - _DN_OFFSET) * SHADOW_FACTOR).astype(np.int64) + _DN_OFFSET
        )
        dn[cirrus] = ground[band][cirrus] + _dn(CIRRUS_ADD[band] * (0.5 + 0.5 * thin[cirrus])) - _DN_OFFSET
        dn[cloud] = _dn(0.5 + 0.18 * thickness[cloud] + CLOUD_BAND_OFFSET[band])
        bands[band] = dn.astype(np.uint16)

    if swath_edge_x is not None:
        # a slanted swath edge, like the edge of a real S2 orbit; east of it there is no data
        yc = tile.top - 0.5 * tile.extent
        outside = x[None, :] > swath_edge_x + 0.15 * (y[:, None] - yc)
        scl[outside] = 0
        for band in BANDS:
            bands[band][outside] = 0
    return Raster(bands, scl)
