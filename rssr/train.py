"""``python -m rssr.train -opt options/train/x.yml``: BasicSR's training pipeline with rssr registered."""
import os

import rssr  # noqa: F401  (registers rssr into BasicSR)


def main() -> None:
    from basicsr.train import train_pipeline
    train_pipeline(os.getcwd())


if __name__ == '__main__':
    main()
