"""claims: a conclusion its numbers no longer support fails a full run and is reported in a quick one."""

from m2nist_utils import claims

import pytest


def test_a_claim_that_holds_is_printed(capsys):
    assert claims.claim(0.95 > 0.93, "context helps", quick=False) is True
    assert "claim holds: context helps" in capsys.readouterr().out


def test_a_claim_that_fails_raises_in_full_mode():
    with pytest.raises(claims.ClaimError, match="context helps"):
        claims.claim(0.93 > 0.95, "context helps", quick=False)


def test_a_claim_that_fails_is_reported_in_quick_mode(capsys):
    assert claims.claim(False, "context helps", quick=True) is False
    assert "not supported in quick mode" in capsys.readouterr().out


def test_gap_is_the_difference_of_means_against_twice_the_larger_spread():
    difference, threshold = claims.gap([1.0, 3.0], [0.0, 0.0, 0.0])
    assert difference == pytest.approx(2.0)
    assert threshold == pytest.approx(2.0)  # std of (1, 3) is 1
    assert not claims.distinguishable([1.0, 3.0], [0.0, 0.0, 0.0])  # 2.0 is not more than 2.0
    assert claims.distinguishable([1.0, 3.0], [-0.1, -0.1])
    assert claims.distinguishable([-0.1, -0.1], [1.0, 3.0])  # either direction
