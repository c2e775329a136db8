import numpy as np
import pytest

from lstmkit.data import StandardScaler
from lstmkit.errors import LstmkitError


def test_scaler_uses_population_std_and_inverts():
    x = np.array([[1.0, 10.0], [3.0, 10.0], [5.0, 10.0]])
    s = StandardScaler.fit(x)
    assert s.mean.tolist() == [3.0, 10.0]
    assert s.std[0] == pytest.approx(np.sqrt(8 / 3))
    assert s.std[1] == 1.0                               # constant column keeps std 1
    z = s.transform(x)
    assert z[:, 0] == pytest.approx([-1.2247449, 0.0, 1.2247449])
    assert z[:, 1].tolist() == [0.0, 0.0, 0.0]
    assert s.inverse(z) == pytest.approx(x)


def test_scaler_round_trips_through_json_dict():
    s = StandardScaler.fit(np.random.default_rng(0).normal(size=(50, 3)))
    t = StandardScaler.from_dict(s.to_dict())
    assert np.array_equal(s.mean, t.mean) and np.array_equal(s.std, t.std)


def test_scaler_rejects_bad_dict():
    with pytest.raises(LstmkitError, match="positive std"):
        StandardScaler.from_dict({"mean": [0.0], "std": [0.0]})
