"""experiments/dft/toy_paired: the exact sign test and the discordant counts against closed forms."""
import pytest
import torch

from experiments.dft.toy_paired import discordant, sign_test


@pytest.mark.parametrize("b,c,p", [(0, 5, 2 / 32), (5, 0, 2 / 32), (3, 3, 1.0), (0, 0, 1.0),
                                   (1, 9, 2 * (1 + 10) / 1024), (10, 20, 0.0987)])
def test_sign_test_closed_forms(b, c, p):
    assert sign_test(b, c) == pytest.approx(p, abs=1e-4)


def test_discordant_counts_each_direction():
    ours = torch.tensor([1, 1, 0, 0, 1, 0.0])
    sft = torch.tensor([1, 0, 1, 0, 0, 1.0])
    assert discordant(ours, sft) == (2, 2)
    assert discordant(ours, ours) == (0, 0)
    assert discordant(torch.ones(4), torch.zeros(4)) == (4, 0)


def test_toy_curves_keep_runs_of_another_base_apart():
    from experiments.dft.toy_curves import row_name

    key = "objective=dft,optimizer.lr=1.5e-05,runner.init_from='logs/dft_toy_base/seed={}',seed=0"
    assert row_name({"choices": {"objective": "dft"}, "key": key.format(0)}) == "dft [optimizer.lr=1.5e-05]"
    assert row_name({"choices": {"objective": "dft"}, "key": key.format(1)}) == \
        "dft [optimizer.lr=1.5e-05, runner.init_from='logs/dft_toy_base/seed=1']"
