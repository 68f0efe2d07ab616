"""The block reader's fast path against GDAL's warper: a coarser raster on the same lattice (a 20 m
SCL on a 10 m grid) is read and repeated instead of warped, and must give the same pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT

from eopack_cloudless_mosaic import blocks
from eopack_cloudless_mosaic.blocks import Grid


@pytest.fixture(scope="module", params=[None, 0, 255], ids=["no-nodata", "nodata-0", "nodata-255"])
def coarse(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 20 m uint8 raster of 37 x 53 pixels (odd sizes: partial blocks at its edges)."""
    path = tmp_path_factory.mktemp("scl") / "scl.tif"
    data = np.random.default_rng(7).integers(0, 256, size=(37, 53), dtype="uint8")
    profile = {"driver": "GTiff", "width": 53, "height": 37, "count": 1, "dtype": "uint8",
               "crs": "EPSG:32632", "transform": rasterio.Affine(20, 0, 600000, 0, -20, 5200000),
               "nodata": request.param, "tiled": True, "blockxsize": 16, "blockysize": 16}  # fmt: skip
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
    return path


def _warped(path: Path, grid: Grid, block: tuple[int, int, int, int]) -> np.ndarray:
    with rasterio.open(path) as src, WarpedVRT(
        src, crs=f"EPSG:{grid.epsg}", transform=grid.block_transform(block), width=block[3],
        height=block[2], resampling=Resampling.nearest, nodata=0,
    ) as vrt:  # fmt: skip
        return vrt.read(1, out_dtype="uint8")


@pytest.mark.parametrize(
    ("origin", "block"),
    [
        ((600000, 5200000), (0, 0, 64, 64)),  # the raster's corner
        ((600000, 5200000), (3, 5, 31, 17)),  # odd offsets: half a source pixel into it
        ((599800, 5200300), (0, 0, 64, 64)),  # the grid starts outside the raster
        ((600000, 5200000), (50, 90, 64, 64)),  # the block runs past the raster's far edges
        ((600000, 5200000), (80, 110, 16, 16)),  # entirely outside
    ],
)
def test_a_repeated_coarse_read_gives_the_warpers_pixels(
    coarse: Path, origin: tuple[int, int], block: tuple[int, int, int, int]
) -> None:
    grid = Grid(32632, rasterio.Affine(10, 0, origin[0], 0, -10, origin[1]), 160, 120)
    blocks._local.__dict__.pop("datasets", None)
    with rasterio.open(coarse) as src:
        assert blocks._upsampling(src, 32632, grid, grid.block_transform(block)) == 2
    np.testing.assert_array_equal(
        blocks._read(str(coarse), grid, block, "uint8"), _warped(coarse, grid, block)
    )


def test_other_grids_still_go_through_the_warper(coarse: Path) -> None:
    """Off the lattice (a 5 m shift), another CRS, or a finer source: no repeat."""
    with rasterio.open(coarse) as src:
        shifted = Grid(32632, rasterio.Affine(10, 0, 600005, 0, -10, 5200000), 64, 64)
        assert blocks._upsampling(src, 32632, shifted, shifted.transform) == 0
        other_crs = Grid(32633, rasterio.Affine(10, 0, 600000, 0, -10, 5200000), 64, 64)
        assert blocks._upsampling(src, 32632, other_crs, other_crs.transform) == 0
        coarser = Grid(32632, rasterio.Affine(40, 0, 600000, 0, -40, 5200000), 64, 64)
        assert blocks._upsampling(src, 32632, coarser, coarser.transform) == 0
    block = (0, 0, 64, 64)
    np.testing.assert_array_equal(
        blocks._read(str(coarse), shifted, block, "uint8"), _warped(coarse, shifted, block)
    )
