"""Sequence kernels (selective scan and friends) and the dispatch between their backends."""
from rssr.ops.selective_scan import selective_scan

__all__ = ['selective_scan']
