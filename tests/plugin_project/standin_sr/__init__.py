"""A stand-in for another BasicSR project (HAT, MambaIR, ...), used by tests/test_plugins.py and
docs/other_projects.md: its own arch and model, registered in BasicSR's global registries by
decorators when the package is imported, the way such projects do. Like them, it imports basicsr
at its top level; ``python -m rssr.train --import standin_sr`` makes that work on BasicSR 1.4.2.
"""
import torch
from torch import nn
from torch.nn import functional as F

from basicsr.models.sr_model import SRModel
from basicsr.utils.matlab_functions import rgb2ycbcr  # noqa: F401  (BasicSR 1.3 layout, as HAT imports it)
from basicsr.utils.registry import ARCH_REGISTRY, MODEL_REGISTRY


@ARCH_REGISTRY.register()
class SMSR(nn.Module):
    """The project's own network named ``SMSR`` (the name of Wang et al., CVPR 2021): a conv and a
    pixel shuffle. rssr resolves ``type: SMSR`` to Rep-Mamba only while no package registers it."""

    def __init__(self, num_in_ch: int = 3, num_feat: int = 8, upscale: int = 2) -> None:
        super().__init__()
        self.body = nn.Conv2d(num_in_ch, num_in_ch * upscale ** 2, 3, padding=1)
        self.upsample = nn.PixelShuffle(upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.body(x))


@MODEL_REGISTRY.register()
class StandinModel(SRModel):
    """SRModel that pads test inputs to a multiple of ``network_g.window_size``, as HATModel does."""

    def test(self) -> None:
        window = self.opt['network_g']['window_size']
        height, width = self.lq.shape[-2:]
        lq = F.pad(self.lq, (0, (-width) % window, 0, (-height) % window), mode='reflect')
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g
        net.eval()
        with torch.no_grad():
            output = net(lq)
        self.net_g.train()
        scale = self.opt['scale']
        self.output = output[..., :height * scale, :width * scale]
