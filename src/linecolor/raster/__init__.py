"""The torch-free ground floor: raster work every other layer builds on.

* :mod:`~linecolor.raster.regions` — line analysis: ink, closing strokes over gaps, the region map (cached)
* :mod:`~linecolor.raster.colouring` — hint strokes → one flat colour per region
* :mod:`~linecolor.raster.imageio` — safe image opening (PNG/JPEG/WebP only, pixel cap before decoding)
* :mod:`~linecolor.raster.resize` — resizing line art so thin lines survive, float channels
* :mod:`~linecolor.raster.fill` — line-bounded regions and the fills on them (paint bucket, hint blend, under-ink)
* :mod:`~linecolor.raster.lines` — line extraction (XDoG, flat-region edges) and sketch clean-up

Nothing here imports torch (a test checks it).
"""
