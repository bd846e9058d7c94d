"""The tasks against their written specs (BENCHMARKS.md digits-100, FedProx Synthetic)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from fedmq.errors import ConfigError
from fedmq.tasks import get_task, local_seed, seconds_per_sample
from fedmq.tasks.synthetic import synthetic_task


def test_digits_partition_is_digits_100_exactly() -> None:
    data = load_digits()
    X = (data.data / 16.0).astype(np.float32)
    X_tr, X_te, y_tr, _ = train_test_split(X, data.target, test_size=0.25, stratify=data.target,
                                           random_state=0)
    rng = np.random.default_rng(0)
    want: list[list[np.ndarray]] = [[] for _ in range(100)]
    for c in range(10):
        idx = np.flatnonzero(y_tr == c)
        idx = idx[rng.permutation(len(idx))]
        p = rng.dirichlet([0.5] * 100)
        for k, piece in enumerate(np.split(idx, (np.cumsum(p) * len(idx)).astype(int)[:-1])):
            want[k].append(piece)
    task = get_task("digits")
    assert task.num_devices == 100
    assert len(task.test_set()) == len(X_te) == 450
    for k in range(100):
        rows = np.concatenate(want[k])
        assert np.array_equal(task.device_data(k).X, X_tr[rows])
        assert np.array_equal(task.device_data(k).y, y_tr[rows])
    assert sum(len(task.device_data(k)) for k in range(100)) == len(y_tr)


def test_digits_speeds_follow_the_spec() -> None:
    rng2 = np.random.default_rng(1)
    want = [np.exp(rng2.normal(np.log(0.002), 1.0)) for _ in range(100)]
    assert np.allclose(seconds_per_sample(100), want)


def test_digits_local_training_is_deterministic_and_moves_the_model() -> None:
    task = get_task("digits")
    data = task.device_data(7)
    seed = local_seed(7, 3)
    assert seed == 7 * 100003 + 3
    a = task.train(task.initial_params(), data, seed=seed)
    b = task.train(task.initial_params(), data, seed=seed)
    assert a.num_samples == len(data)
    assert a.params["coef"].dtype == np.float32
    assert a.params["coef"].shape == (10, 64)
    assert np.array_equal(a.params["coef"], b.params["coef"])
    assert np.abs(a.params["coef"]).sum() > 0


def test_dirichlet_alpha_and_n_are_parameters() -> None:
    few = get_task("digits", 10, alpha=100.0)
    assert few.num_devices == 10
    sizes = [len(few.device_data(k)) for k in range(10)]
    assert min(sizes) > 0.5 * max(sizes)  # near-IID with a large alpha
    with pytest.raises(ConfigError):
        few.device_data(10)


def test_synthetic_matches_fedprox() -> None:
    task = get_task("synthetic")
    assert task.num_devices == 30
    rng = np.random.default_rng(0)
    sizes = rng.lognormal(4, 2, 30).astype(int) + 50
    for k in range(30):
        d = task.device_data(k)
        assert d.X.shape == (int(0.8 * sizes[k]), 60)
        assert set(np.unique(d.y)) <= set(range(10))
    assert task.spec.shapes() == {"coef": (10, 60), "intercept": (10,)}
    # seeded: the same arguments give the same data
    again = synthetic_task(num_devices=30)
    assert np.array_equal(again.device_data(3).X, task.device_data(3).X)


def test_unknown_task_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        get_task("mnist")
