"""Text features stay finite on any input."""

import numpy as np


def test_text_stats_stay_finite_on_hostile_text():
    from openfirst.router.features import text_stat_matrix

    m = text_stat_matrix(["7" * 5000, "1" + "0" * 400 + ".5 and 9" * 3, "", "\x00" * 10])
    assert np.isfinite(m).all()
