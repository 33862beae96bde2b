"""``python -m rssr.test -opt options/test/x.yml``: BasicSR's ``test_pipeline`` with rssr registered,
the option file checked first, and results under ``./results``."""
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> None:
    from rssr.basicsr.startup import run
    run('basicsr.test:test_pipeline', is_train=False, argv=argv)


if __name__ == '__main__':
    main()
