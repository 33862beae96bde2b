"""What a process started by ``torchrun`` knows of itself: its rank on the node, and the process group it
starts (NCCL on the GPU its local rank names when CUDA is present, gloo on the CPU).

Plain torch, used by ``rssr.infer``'s sharding and by the BasicSR bridge's ``init_dist``."""
from __future__ import annotations

import os
from typing import Any, Optional

import torch
import torch.distributed as dist


def local_rank() -> int:
    """This process's rank on its node, as set by torchrun (0 when not launched by it)."""
    return int(os.environ.get('LOCAL_RANK', 0))


def start_process_group(backend: Optional[str] = None, **kwargs: Any) -> None:
    """Join the process group torchrun describes in the environment: NCCL on ``cuda:LOCAL_RANK`` when CUDA is
    available, else gloo (``backend`` overrides the choice)."""
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank() % torch.cuda.device_count())
    dist.init_process_group(backend=backend or ('nccl' if torch.cuda.is_available() else 'gloo'), **kwargs)
