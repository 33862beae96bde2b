"""Sequence kernels (selective scan and friends) and the dispatch between their backends."""
from rssr.ops.selective_scan import ScanBackendUnavailable, selective_scan

__all__ = ['ScanBackendUnavailable', 'selective_scan']
