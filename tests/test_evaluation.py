"""Equivalence evaluation and the vanilla sweep on small models."""

import torch

from pascal_snn.evaluation import evaluate_equivalence, first_reaching, sweep_vanilla
from tests.models_for_tests import ResidualMaxPoolNet, randomize_batchnorm


def batches(n=96, batch=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=g) * 2
    y = torch.randint(0, 10, (n,), generator=g)
    return [(x[i : i + batch], y[i : i + batch]) for i in range(0, n, batch)]


def model():
    torch.manual_seed(0)
    m = ResidualMaxPoolNet(levels=(4, 2, 1, 8))
    randomize_batchnorm(m, torch.Generator().manual_seed(0))
    return m.eval()


def test_float64_agrees_everywhere_with_no_boundary_cases():
    data = batches()
    m = model()
    result = evaluate_equivalence(m, data, dtype=torch.float64)
    assert result.images == 96
    assert result.agreement == 96 and result.boundary_cases == 0
    assert result.max_abs_logit_diff <= 1e-9
    assert result.ann_correct == result.snn_correct
    with torch.no_grad():
        expected = sum(int((m.double()(x.double()).argmax(1) == y).sum()) for x, y in data)
    assert result.ann_correct == expected
    assert result.levels == [4, 2, 1, 8]


def test_float32_disagreements_are_all_boundary_cases():
    result = evaluate_equivalence(model(), batches(n=256, batch=64), dtype=torch.float32)
    assert result.unexplained_disagreements == 0
    assert result.images - result.agreement <= result.boundary_cases
    assert result.max_abs_logit_diff < 1.0


def test_max_images_truncates():
    result = evaluate_equivalence(model(), batches(), max_images=40)
    assert result.images == 40


def test_vanilla_sweep_prefix_consistent_with_direct_runs():
    m = model().double()
    data = batches(n=64)
    sweep = sweep_vanilla(m, data, [1, 4, 16], dtype=torch.float64)
    assert sweep.timesteps == [1, 4, 16] and sweep.images == 64
    from pascal_snn import convert

    for t, correct in zip(sweep.timesteps, sweep.correct):
        net = convert(m, mode="vanilla", timesteps=t)
        with torch.no_grad():
            direct = sum(int((net(x.double()).argmax(1) == y).sum()) for x, y in data)
        assert correct == direct
    assert first_reaching(sweep, 0.0) == 1
    assert first_reaching(sweep, 1.01) is None


def test_boundary_case_detected_when_float32_rounding_crosses_a_level():
    from torch import nn

    from pascal_snn import QCFS

    net = nn.Sequential(nn.Linear(2, 1, bias=False), QCFS(1, 1.0), nn.Linear(1, 2))
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[2].weight.copy_(torch.tensor([[1.0], [-1.0]]))
        net[2].bias.copy_(torch.tensor([0.0, 0.5]))
    # z = 0.5 − 2⁻²⁵ is just below the boundary 0.5 (level 0), but in float32 the membrane
    # θ*/2 + z = 1 − 2⁻²⁵ rounds to 1.0 and the neuron fires.
    x = torch.tensor([[0.5 - 2**-25, 0.0], [0.1, 0.0]])
    y = torch.tensor([1, 1])
    r32 = evaluate_equivalence(net.eval(), [(x, y)], dtype=torch.float32)
    r64 = evaluate_equivalence(net.eval(), [(x, y)], dtype=torch.float64)
    assert (r32.boundary_cases, r64.boundary_cases) == (1, 0)
    assert r64.snn_correct == 2 and r32.snn_correct == 1


def test_vanilla_agreement_counts_match_direct_comparison():
    from pascal_snn import convert

    m = model().double()
    data = batches(n=64)
    sweep = sweep_vanilla(m, data, [2, 8], dtype=torch.float64)
    for t, agree in zip(sweep.timesteps, sweep.agreement):
        net = convert(m, mode="vanilla", timesteps=t)
        with torch.no_grad():
            direct = sum(
                int((net(x.double()).argmax(1) == m(x.double()).argmax(1)).sum()) for x, _ in data
            )
        assert agree == direct
    assert sweep.as_dict()["agreement_with_ann"] == [a / 64 for a in sweep.agreement]


def test_vanilla_sweep_counts_the_ann_on_the_same_images():
    m = model().double()
    data = batches(n=64)
    sweep = sweep_vanilla(m, data, [1, 4], dtype=torch.float64, max_images=40)
    with torch.no_grad():
        x = torch.cat([b[0] for b in data])[:40].double()
        y = torch.cat([b[1] for b in data])[:40]
        expected = int((m(x).argmax(1) == y).sum())
    assert sweep.ann_correct == expected and sweep.images == 40
    assert first_reaching(sweep) == first_reaching(sweep, expected / 40)


def test_a_shared_qcfs_is_compared_per_call_site():
    """The ANN's two calls of one QCFS are matched to the SNN's `act` and `act#2`."""
    from torch import nn

    from pascal_snn import QCFS

    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.conv2 = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
            self.act, self.fc = QCFS(4, 1.0), nn.Linear(4 * 64, 10)

        def forward(self, x):
            return self.fc(self.act(self.conv2(self.act(self.conv1(x)))).flatten(1))

    torch.manual_seed(0)
    result = evaluate_equivalence(Shared().eval(), batches(), dtype=torch.float64)
    assert result.agreement == 96 and result.boundary_cases == 0
