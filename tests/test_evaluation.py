"""Equivalence evaluation and the vanilla sweep on small models."""

import torch
from torch import nn

from pascal_snn import QCFS
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


def on_a_boundary(b: float = 0.875) -> nn.Module:
    """Input layer L = 3, θ = 3; a second layer z = −h/8 + b with L = 1, θ = 1; logits
    (h₂, ½ − h₂). For the input 3 (level 3, h = 3) and b = 7/8, z = ½ lies exactly on the
    boundary: level 1. The PASC layer adds fl(b/3) three times (T_in = 3); in float32 its sum
    ends just below the boundary and the neuron stays silent, in float64 it does not."""
    net = nn.Sequential(
        nn.Linear(1, 1, bias=False), QCFS(3, 3.0), nn.Linear(1, 1), QCFS(1, 1.0), nn.Linear(1, 2)
    )
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[2].weight.fill_(-0.125)
        net[2].bias.fill_(b)
        net[4].weight.copy_(torch.tensor([[1.0], [-1.0]]))
        net[4].bias.copy_(torch.tensor([0.0, 0.5]))
    return net.eval()


def test_a_float32_rounding_difference_is_a_boundary_case_and_explains_the_disagreement():
    x, y = torch.tensor([[3.0], [1.0]]), torch.tensor([0, 0])
    r32 = evaluate_equivalence(on_a_boundary(), [(x, y)], dtype=torch.float32)
    r64 = evaluate_equivalence(on_a_boundary(), [(x, y)], dtype=torch.float64)
    assert (r32.boundary_cases, r32.agreement, r32.unexplained_disagreements) == (1, 1, 0)
    assert (r64.boundary_cases, r64.agreement, r64.unexplained_disagreements) == (0, 2, 0)
    assert (r32.ann_correct, r32.snn_correct) == (2, 1)


def test_a_level_both_float32_networks_round_alike_is_no_boundary_case():
    """Boundary cases compare the SNN with its ANN in the same dtype: an input whose level
    float32 moves in the ANN and in the SNN alike (here the input layer, which computes the
    ANN's own formula) is converted exactly and is not counted."""
    net = nn.Sequential(nn.Linear(2, 1, bias=False), QCFS(1, 1.0), nn.Linear(1, 2))
    with torch.no_grad():
        net[0].weight.fill_(1.0)
        net[2].weight.copy_(torch.tensor([[1.0], [-1.0]]))
        net[2].bias.copy_(torch.tensor([0.0, 0.5]))
    # z = 0.5 − 2⁻²⁵ is just below the boundary 0.5 (level 0), but in float32 z + ½ rounds
    # to 1.0: the float32 ANN and the SNN's input layer both compute level 1.
    x = torch.tensor([[0.5 - 2**-25, 0.0], [0.1, 0.0]])
    y = torch.tensor([1, 1])
    r32 = evaluate_equivalence(net.eval(), [(x, y)], dtype=torch.float32)
    r64 = evaluate_equivalence(net.eval(), [(x, y)], dtype=torch.float64)
    assert (r32.boundary_cases, r32.agreement, r64.boundary_cases, r64.agreement) == (0, 2, 0, 2)
    assert r64.snn_correct == 2 and r32.snn_correct == r32.ann_correct == 1


def nonfinite_model() -> nn.Module:
    """The ResidualMaxPoolNet whose classifier gives class 3 a NaN logit and class 7 +inf."""
    m = model()
    with torch.no_grad():
        m.fc2.weight[3] = float("nan")
        m.fc2.bias[7] = float("inf")
    return m


def test_nonfinite_logits_never_agree_and_are_reported():
    data = batches(n=64)
    result = evaluate_equivalence(nonfinite_model(), data, dtype=torch.float64)
    assert result.images == 64 and result.nonfinite_outputs == 64
    assert result.agreement == 0 and result.ann_correct == result.snn_correct == 0
    assert result.unexplained_disagreements == 64 and result.boundary_cases == 0
    assert result.max_abs_logit_diff == 0.0  # over finite outputs only: there are none
    assert result.as_dict()["nonfinite_outputs"] == 64


def test_nonfinite_logits_in_some_images_only():
    m = model()
    with torch.no_grad():  # logit 2 overflows to +inf on the images where unit 1 fires
        m.fc2.weight[2] = 0.0
        m.fc2.weight[2, 1] = 1e37
        m.fc2.bias[2] = 3.4e38
    data = batches(n=64)
    result = evaluate_equivalence(m, data, dtype=torch.float32)
    from pascal_snn import convert

    snn = convert(m)
    with torch.no_grad():
        ann_out = torch.cat([m(x) for x, _ in data])
        snn_out = torch.cat([snn(x) for x, _ in data])
    finite = torch.isfinite(ann_out).all(1) & torch.isfinite(snn_out).all(1)
    bad = int((~finite).sum())
    assert 0 < bad < 64, bad  # some inputs overflow, some do not: the case is not vacuous
    assert result.nonfinite_outputs == bad
    assert result.agreement == int((finite & (ann_out.argmax(1) == snn_out.argmax(1))).sum())
    assert result.max_abs_logit_diff < float("inf")


def test_vanilla_sweep_counts_nonfinite_outputs_as_wrong():
    data = batches(n=64)
    sweep = sweep_vanilla(nonfinite_model().double(), data, [1, 4], dtype=torch.float64)
    assert sweep.nonfinite == [64, 64] and sweep.ann_nonfinite == 64
    assert sweep.correct == [0, 0] and sweep.agreement == [0, 0] and sweep.ann_correct == 0


def test_one_pass_runs_the_ann_once_per_batch_and_traces_once(monkeypatch):
    """evaluate(): one trace for both networks, one ANN forward per batch."""
    from torch import fx

    import pascal_snn.evaluation as evaluation
    from pascal_snn.evaluation import evaluate

    traces, forwards = [], []
    original_trace, original_cast = fx.Tracer.trace, evaluation._cast

    def counting_trace(self, *args, **kwargs):
        traces.append(1)
        return original_trace(self, *args, **kwargs)

    def counting_cast(*args, **kwargs):
        ann = original_cast(*args, **kwargs)
        ann.register_forward_pre_hook(lambda _m, _i: forwards.append(1))
        return ann

    monkeypatch.setattr(fx.Tracer, "trace", counting_trace)
    monkeypatch.setattr(evaluation, "_cast", counting_cast)
    m = model()
    data = batches(n=96)
    both = evaluate(m, data, timesteps=[1, 4])
    assert len(forwards) == 3 and len(traces) == 1  # the trace of the conversion, shared
    assert both.pasc is not None and both.vanilla is not None
    monkeypatch.setattr(fx.Tracer, "trace", original_trace)
    monkeypatch.setattr(evaluation, "_cast", original_cast)
    assert both.pasc == evaluate_equivalence(m, data)
    assert both.vanilla == sweep_vanilla(m, data, [1, 4], dtype=torch.float64)


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
