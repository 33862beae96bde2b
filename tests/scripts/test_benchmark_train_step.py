"""scripts/benchmark_train_step.py's per-GMAC table: step time over forward MACs, ratio to the best row."""
import sys

from testkit import REPO

sys.path.insert(0, str(REPO / 'scripts'))
from benchmark_train_step import print_per_gmac  # noqa: E402


def test_per_gmac_table_divides_by_the_macs_and_compares_with_the_best_row(capsys):
    print_per_gmac(['small', 'big'], [0.9, 0.2], [3e9, 2e9])
    rows = capsys.readouterr().out.splitlines()
    assert rows[0] == '| arch | ms per step | forward GMACs | ms per GMAC | ratio to best |'
    assert rows[2] == '| small | 900 | 3.000 | 300 | 3.00x |'
    assert rows[3] == '| big | 200 | 2.000 | 100 | 1.00x |'
