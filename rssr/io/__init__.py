"""Raster I/O for rssr: read multiband windows as physical values, write georeferenced SR results."""
from rssr.io.raster import (
                            RADIOMETRY_PRESETS,
                            RASTER_EXTENSIONS,
                            GeoReference,
                            Radiometry,
                            RasterArray,
                            RasterError,
                            RasterInfo,
                            output_georeference,
                            read_raster,
                            read_raster_info,
                            resolve_bands,
                            resolve_radiometry,
                            values_to_dn,
                            write_raster,
)

__all__ = ['RADIOMETRY_PRESETS', 'RASTER_EXTENSIONS', 'GeoReference', 'Radiometry', 'RasterArray', 'RasterError',
           'RasterInfo', 'output_georeference', 'read_raster', 'read_raster_info', 'resolve_bands',
           'resolve_radiometry', 'values_to_dn', 'write_raster']
