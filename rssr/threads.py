"""How many intra-op threads each rssr process uses (one place, so processes never oversubscribe)."""
from __future__ import annotations

from typing import Any, Dict, Optional


def configure_threads(opt: Optional[Dict[str, Any]]) -> None:
    """Set torch's intra-op thread count for this process from the options (``None``: leave torch's)."""
