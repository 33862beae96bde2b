"""Base of modules that wrap an arch without adding weights (band normalisation, self-ensemble)."""
from __future__ import annotations

from typing import Any, Mapping

from torch import nn

from rssr.layers.padding import SizeRequirements


class ArchWrapper(nn.Module):
    """Wraps ``net``: its size requirements and scale show through, and its state_dict is the inner
    network's under the inner's own keys, so checkpoints load into the wrapper and the bare arch alike."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    @property
    def size_requirements(self) -> SizeRequirements:
        """The inner arch's input size requirements (read by tiled inference)."""
        return getattr(self.net, 'size_requirements', SizeRequirements())

    @property
    def output_scale(self) -> int:
        """The inner arch's output size / input size (the wrapper does not resample)."""
        return self.net.output_scale

    def state_dict(self, *args: Any, **kwargs: Any) -> Any:
        return self.net.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        return self.net.load_state_dict(state_dict, strict=strict, assign=assign)
