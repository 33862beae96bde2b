"""Raster I/O for rssr: read multiband windows as physical values, write georeferenced SR results."""
from rssr.io.raster import *  # noqa: F403  (the public names, listed in rssr.io.raster.__all__)
from rssr.io.raster import __all__  # noqa: F401
