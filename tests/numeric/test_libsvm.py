"""The LIBSVM reader and the logistic-regression problem on the real files (when ../shared/data exists)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from methods.pd_sliding import LibsvmLogistic
from methods.pd_sliding.config import ConstraintSpec
from reprolab.checks import ConfigError
from reprolab.data.libsvm import LibsvmFormatError, read_libsvm
from tests.conftest import SHARED_DATA, needs_shared_data
from tests.numeric.helpers import context


def write(tmp_path, text, name="data.svm"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_reader_parses_sparse_rows_and_label_only_rows(tmp_path):
    X, y = read_libsvm(write(tmp_path, "+1 1:0.5 3:2\n\n-1\n-1 2:1 # comment\n"), n_features=4)
    np.testing.assert_array_equal(y, [1, -1, -1])
    np.testing.assert_array_equal(X, [[0.5, 0, 2, 0], [0, 0, 0, 0], [0, 1, 0, 0]])
    assert read_libsvm(write(tmp_path, "1 2:1\n"))[0].shape == (1, 2)


@pytest.mark.parametrize("text,match", [("1 a:1\n", "is not `label idx:val"), ("yes 1:1\n", "is not `label"),
                                        ("1 0:1\n", "index 0 < 1"), ("1 0:1 3:2\n", "index 0 < 1"),
                                        ("", "no examples"),
                                        ("1 7:1\n", "exceeds n_features=4")])
def test_reader_rejects_non_libsvm_files(tmp_path, text, match):
    with pytest.raises(LibsvmFormatError, match=match):
        read_libsvm(write(tmp_path, text), n_features=4)


def test_reader_rejects_binary_and_missing_files(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(LibsvmFormatError, match="not ASCII"):
        read_libsvm(path)
    with pytest.raises(FileNotFoundError, match="paths.data_dir"):
        read_libsvm(tmp_path / "a9a")


def test_more_workers_than_samples_is_refused(tmp_path):
    path = write(tmp_path, "1 1:1\n-1 2:1\n1 1:1 2:1\n")
    with pytest.raises(ConfigError, match="problem.workers=4 exceeds the 3 samples"):
        LibsvmLogistic(path=str(path), n_features=2, workers=4).build(context(tmp_path))


def test_logistic_gradient_matches_autograd(tmp_path):
    rng = np.random.default_rng(0)
    lines = [f"{rng.choice([-1, 1])} " + " ".join(f"{j + 1}:{rng.normal():.3f}" for j in range(5)) for _ in range(23)]
    spec = LibsvmLogistic(path=str(write(tmp_path, "\n".join(lines))), n_features=5, workers=4)
    p = spec.build(context(tmp_path))
    assert p.counts.tolist() == [6, 6, 6, 5] and float(p.w[3, 5]) == 0.0  # padded row of the short shard
    x = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(p.values(x).sum(), x)
    torch.testing.assert_close(p.grad(x.detach()), grad, rtol=0, atol=1e-14)
    X, y = read_libsvm(spec.path, 5)
    xc = x.detach()[0]
    F = np.mean(np.logaddexp(0, -y * (X @ xc.numpy())))
    assert float(p.values(xc.expand(4, -1)).sum()) == pytest.approx(F, rel=1e-12)


@needs_shared_data
def test_a9a_and_w8a_shards():
    from methods.pd_sliding.data import libsvm_shards

    for name, n, rows in (("a9a", 123, 32_561), ("w8a", 300, 49_749)):
        A, y = libsvm_shards(LibsvmLogistic(path=str(SHARED_DATA / "libsvm" / name), n_features=n, workers=10))
        assert sum(len(v) for v in y) == rows and {len(v) for v in y} <= {rows // 10, rows // 10 + 1}
        assert set(np.unique(np.concatenate(y))) == {-1.0, 1.0} and A[0].shape[1] == n


@pytest.mark.slow
@needs_shared_data
def test_a9a_problem_split_over_ten_workers(tmp_path):
    spec = LibsvmLogistic(path=str(SHARED_DATA / "libsvm" / "a9a"), n_features=123, workers=10,
                          constraint=ConstraintSpec(radius=10.0))
    p = spec.build(context(tmp_path))
    assert int(p.counts.sum()) == 32_561 and p.A.shape == (10, 3257, 123)
    ref = p.reference  # the l1 constraint is active: the optimum lies on the sphere of radius 10
    assert float(ref.x_star.abs().sum()) == pytest.approx(10.0, rel=1e-9) and ref.fw_gap < 1e-8
    assert 0.3 < ref.f_star < 0.7
