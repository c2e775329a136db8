import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lstmkit.data import TargetTransform
from lstmkit.errors import LstmkitError


def test_difference_forward_by_hand():
    y = np.array([1.0, 4.0, 9.0, 16.0, 25.0, 36.0])[:, None]
    assert TargetTransform(lags=(1,)).forward(y)[:, 0].tolist() == [3, 5, 7, 9, 11]
    assert TargetTransform(lags=(1, 1)).forward(y)[:, 0].tolist() == [2, 2, 2, 2]
    assert TargetTransform(lags=(2,)).forward(y)[:, 0].tolist() == [8, 12, 16, 20]


@pytest.mark.parametrize("lags", [(), (1,), (12,), (1, 12), (12, 1)])
@pytest.mark.parametrize("log", [False, True])
def test_integrate_inverts_forward(lags, log):
    rng = np.random.default_rng(1)
    y = np.exp(rng.normal(size=(60, 2)).cumsum(0) * 0.1) + 1            # positive, (60, 2)
    t = TargetTransform(log=log, lags=lags)
    z = t.forward(y)
    assert z.shape == (60 - t.lost, 2)
    u = t.to_level(y)
    cut = 48                                                              # forecast y[48:] from u[:48]
    levels = t.integrate(z[None, cut - t.lost:], u[None, :cut])[0]
    assert t.from_level(levels) == pytest.approx(y[cut:], rel=1e-10)


def test_log_refuses_non_positive_targets():
    with pytest.raises(LstmkitError, match="log transform needs positive targets, got a minimum of -1"):
        TargetTransform(log=True).forward(np.array([[2.0], [-1.0]]))


def test_integrate_needs_enough_history():
    with pytest.raises(LstmkitError, match="needs 13 past steps, got 5"):
        TargetTransform(lags=(1, 12)).integrate(np.zeros((3, 1)), np.zeros((5, 1)))


@settings(max_examples=40, deadline=None)
@given(lags=st.lists(st.integers(1, 6), max_size=3), log=st.booleans(), steps=st.integers(1, 8),
       seed=st.integers(0, 10_000))
def test_integrate_inverts_forward_for_any_lags(lags, log, steps, seed):
    t = TargetTransform(log=log, lags=tuple(lags))
    y = np.random.default_rng(seed).uniform(0.5, 5.0, size=(t.lost + 10 + steps, 1))
    z = t.forward(y)
    cut = len(y) - steps
    levels = t.integrate(z[None, cut - t.lost:], t.to_level(y)[None, :cut])[0]
    assert t.from_level(levels) == pytest.approx(y[cut:], rel=1e-9)
