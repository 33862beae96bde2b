"""``python -m rssr.test -opt options/test/x.yml``: BasicSR's test pipeline with rssr registered."""
import os

import rssr  # noqa: F401  (registers rssr into BasicSR)


def main() -> None:
    from basicsr.test import test_pipeline
    test_pipeline(os.getcwd())


if __name__ == '__main__':
    main()
