"""``python -m rssr.train -opt options/train/x.yml [--auto_resume] [--launcher pytorch]``.

BasicSR's own ``train_pipeline`` with rssr registered, the option file checked first, and outputs
under the current directory. Multi-process: ``torchrun --nproc_per_node=N -m rssr.train -opt x.yml
--launcher pytorch`` (NCCL on GPUs, gloo on CPU).
"""
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> None:
    from rssr.basicsr.startup import run
    run('basicsr.train:train_pipeline', is_train=True, argv=argv)


if __name__ == '__main__':
    main()
