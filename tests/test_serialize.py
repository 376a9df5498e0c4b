"""Saving and loading converted networks (``snn.save``, ``load_snn``): bit-identical logits
and spike counts after a round trip, plain-data files, and refusals of foreign, corrupt and
tampered files (nothing in them runs)."""

import os

import pytest
import torch
from torch import fx, nn

from pascal_snn import QCFS, CheckpointError, ConversionError, VanillaNetwork, convert, load_snn
from pascal_snn.checkpoint import save_checkpoint
from pascal_snn.convert.serialize import FORMAT, KIND
from pascal_snn.spiking import PascIF
from tests.models_for_tests import randomize_batchnorm


class SmallCNN(nn.Module):
    """BatchNorm, MaxPool after an IF layer, a residual add, torch.cat, flatten and view."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.act1 = QCFS(3, 1.5)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.act2 = QCFS(2, 2.0)
        self.conv3 = nn.Conv2d(4, 4, 1)
        self.act3 = QCFS(4, 1.0)
        self.fc = nn.Linear(8 * 4 * 4, 5)

    def forward(self, x):
        p = self.pool(self.act1(self.bn1(self.conv1(x))))
        b = self.act2(self.conv2(p) + p)
        y = torch.cat([b, self.act3(self.conv3(b))], dim=1)
        return self.fc(torch.flatten(y, 1).view(y.size(0), -1))


class SharedAct(nn.Module):
    """One QCFS module called at two sites: two IF layers sharing its θ and L."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(6, 8), nn.Linear(8, 8), nn.Linear(8, 3)
        self.act = QCFS(3, 1.0)

    def forward(self, x):
        return self.fc3(self.act(self.fc2(self.act(self.fc1(x)))))


def mlp():
    return nn.Sequential(
        nn.Flatten(), nn.Linear(12, 16), QCFS(4, 1.0), nn.Linear(16, 8), QCFS(2, 2.0),
        nn.Linear(8, 3),
    )  # fmt: skip


def conv1d():
    return nn.Sequential(
        nn.Conv1d(2, 4, 3, padding=1), nn.BatchNorm1d(4), QCFS(3, 1.0), nn.AvgPool1d(2),
        nn.Conv1d(4, 4, 3, padding=1), QCFS(2, 1.5), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
        nn.Linear(4, 3),
    )  # fmt: skip


def conv3d():
    return nn.Sequential(
        nn.Conv3d(1, 3, 3, padding=1), nn.BatchNorm3d(3), QCFS(2, 1.0), nn.MaxPool3d(2),
        nn.Flatten(), nn.Linear(3 * 2 * 2 * 2, 4),
    )  # fmt: skip


CASES = {
    "mlp": (mlp, (3, 4)),
    "cnn": (SmallCNN, (2, 8, 8)),
    "shared": (SharedAct, (6,)),
    "conv1d": (conv1d, (2, 8)),
    "conv3d": (conv3d, (1, 4, 4, 4)),
}


def model_and_input(case, dtype=torch.float64, seed=0):
    build, shape = CASES[case]
    torch.manual_seed(seed)
    model = build().to(dtype).eval()
    randomize_batchnorm(model, torch.Generator().manual_seed(seed))
    return model, torch.randn(7, *shape, dtype=dtype) * 2


def stats(net):
    return [
        (n, int(f.samples), int(f.excitatory), int(f.inhibitory), int(f.output_spikes),
         f.updates.tolist())
        for n, f in net.if_layers()
    ]  # fmt: skip


def table(net):
    if isinstance(net, VanillaNetwork):
        return [(n, float(f.theta)) for n, f in net.if_layers()]
    return [(n, f.L, float(f.theta), f.t_in) for n, f in net.if_layers()]


def round_trip(net, path):
    net.save(path)
    return load_snn(path)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_round_trip_gives_bit_identical_logits_and_spike_counts(case, dtype, tmp_path):
    model, x = model_and_input(case, dtype)
    snn = convert(model, example_input=x)
    loaded = round_trip(snn, tmp_path / "snn.pt")
    assert type(loaded) is type(snn) and not loaded.training
    assert table(loaded) == table(snn) and loaded.part_bytes == snn.part_bytes
    snn.reset_stats()
    expected = snn(x)
    got = loaded(x)
    assert got.dtype == dtype and torch.equal(got, expected)
    assert stats(loaded) == stats(snn) and stats(snn)[0][4] > 0
    if dtype == torch.float64:
        assert (expected - model(x)).abs().max() <= 1e-12


def test_a_shared_activation_stays_two_layers(tmp_path):
    model, x = model_and_input("shared")
    loaded = round_trip(convert(model, example_input=x), tmp_path / "snn.pt")
    assert [n for n, _ in loaded.if_layers()] == ["act", "act#2"]


def test_vanilla_round_trip(tmp_path):
    model, x = model_and_input("cnn")
    snn = convert(model, "vanilla", 6, example_input=x)
    loaded = round_trip(snn, tmp_path / "snn.pt")
    assert loaded.timesteps == 6 and table(loaded) == table(snn)
    assert torch.equal(loaded(x), snn(x))
    assert torch.equal(loaded.prefix_logits(x, 9), snn.prefix_logits(x, 9))


def test_every_built_shape_the_current_one_and_part_bytes_come_back(tmp_path):
    model, x = model_and_input("conv1d")
    longer = torch.randn(5, 2, 12, dtype=torch.float64)
    snn = convert(model)
    snn.part_bytes = 512  # parts of a few images each
    snn(longer), snn(x)
    loaded = round_trip(snn, tmp_path / "snn.pt")
    assert loaded.built_shapes() == [(2, 12), (2, 8)] and loaded.current_shape == (2, 8)
    assert loaded.part_bytes == 512
    for batch in (x, longer):
        assert torch.equal(loaded(batch), snn(batch))


def test_a_network_that_has_seen_no_input_saves_and_builds_on_its_first(tmp_path):
    model, x = model_and_input("mlp")
    loaded = round_trip(convert(model), tmp_path / "snn.pt")
    assert loaded.built_shapes() == [] and loaded.current_shape is None
    assert torch.equal(loaded(x), convert(model)(x))


def test_the_file_is_plain_data(tmp_path):
    model, x = model_and_input("cnn")
    convert(model, example_input=x).save(tmp_path / "snn.pt")
    data = torch.load(tmp_path / "snn.pt", weights_only=True, map_location="cpu")
    assert data["kind"] == KIND and data["format"] == FORMAT and data["mode"] == "pasc"
    assert data["input_shapes"] == [[2, 8, 8]]
    assert [row["name"] for row in data["layers"][0]] == ["act1", "act2", "act3"]
    assert {m["class"] for m in data["modules"].values()} == {
        "torch.nn.Conv2d", "torch.nn.BatchNorm2d", "torch.nn.MaxPool2d", "torch.nn.Linear",
        "pascal_snn.QCFS",
    }  # fmt: skip
    assert [f for f in os.listdir(tmp_path)] == ["snn.pt"]  # written atomically, no leftovers


# --- refusals -------------------------------------------------------------------------------


def saved(tmp_path, case="mlp"):
    model, x = model_and_input(case)
    path = tmp_path / "snn.pt"
    convert(model, example_input=x).save(path)
    return path


def tampered(path, edit):
    data = torch.load(path, weights_only=True)
    edit(data)
    torch.save(data, path)
    return path


def one_line(exc_info):
    text = str(exc_info.value)
    assert "\n" not in text
    return text


def test_an_unknown_format_version_is_refused_naming_the_versions_read(tmp_path):
    path = tampered(saved(tmp_path), lambda d: d.update(format=99))
    with pytest.raises(CheckpointError) as found:
        load_snn(path)
    assert "format 99" in one_line(found) and "reads format 1" in str(found.value)


def test_a_training_checkpoint_is_refused(tmp_path):
    model, _ = model_and_input("mlp")
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"model": model.state_dict(), "arch": {"name": "x"}, "levels": [4, 2]})
    with pytest.raises(CheckpointError, match=r"is a training checkpoint.*pascal-snn convert"):
        load_snn(path)


@pytest.mark.parametrize(
    ("write", "pattern"),
    [
        (lambda p: torch.save({"weights": torch.ones(2)}, p), r"not a saved pascal-snn"),
        (lambda p: torch.save(nn.Linear(2, 2), p), r"pickled Python objects"),
        (lambda p: p.write_bytes(b"not a torch file at all"), r"not a saved spiking network"),
    ],
)
def test_foreign_files_are_refused_in_one_line(write, pattern, tmp_path):
    path = tmp_path / "other.pt"
    write(path)
    with pytest.raises(CheckpointError, match=pattern) as found:
        load_snn(path)
    one_line(found)


def test_a_truncated_file_is_refused(tmp_path):
    path = saved(tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as found:
        load_snn(path)
    one_line(found)


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_snn(tmp_path / "nope.pt")


def _node(data, op):
    return next(n for n in data["graph"]["nodes"] if n["op"] == op)


def _set_function(name):
    def edit(data):
        node = next(n for n in data["graph"]["nodes"] if n["op"] == "call_function")
        node["target"] = name

    return edit


def _flatten_to_function(data):
    """The MLP's Flatten module call becomes torch.flatten(x, 1), then gets tampered."""
    node = next(n for n in data["graph"]["nodes"] if n["target"] == "0")
    node.update(op="call_function", target="torch:flatten", args=[*node["args"], 1])


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        (_set_function("os:system"), r"calls 'os:system'"),
        (_set_function("builtins:eval"), r"calls 'builtins:eval'"),
        (_set_function("torch:load"), r"calls 'torch:load'"),
        (_set_function("torch:save"), r"calls 'torch:save'"),
        (_set_function("operator:call"), r"calls 'operator:call'"),
        (_set_function("torch:_C"), r"calls 'torch:_C'"),
        (
            lambda d: _node(d, "placeholder").update(target="x=os.system('echo pwned')"),
            r"not a name",
        ),
        (
            lambda d: _node(d, "call_module").update(target='0")or os.system("echo pwned'),
            r"not a name",
        ),
        (lambda d: d["modules"]["1"].update({"class": "os.system"}), r"not a torch.nn layer"),
        (lambda d: d["modules"]["1"].update({"class": "torch.nn.functional"}), r"not a torch"),
        (lambda d: d["modules"]["1"]["kwargs"].update(in_features=11), r"size mismatch"),
        (lambda d: d["modules"]["2"].update(repr="QCFS(L=4, theta=9)"), r"rebuilds as"),
        (lambda d: d["modules"]["2"]["state"]["_extra_state"].update(L=3), r"rebuilds as"),
        (lambda d: d["layers"][0][1].update(theta=2.5), r"other IF layers"),
        (lambda d: d.update(mode="spiking"), r"bad mode"),
    ],
)
def test_a_tampered_file_is_refused_and_nothing_in_it_runs(edit, pattern, tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(os, "system", lambda *a: ran.append(a))
    path = saved(tmp_path)
    tampered(path, lambda d: (_flatten_to_function(d), edit(d)))
    with pytest.raises(CheckpointError, match=pattern) as found:
        load_snn(path)
    assert "corrupt or was changed" in one_line(found) or "other IF layers" in str(found.value)
    assert ran == []


def test_the_tampering_helper_leaves_a_loadable_file(tmp_path):
    model, x = model_and_input("mlp")
    path = tampered(saved(tmp_path), _flatten_to_function)
    assert torch.equal(load_snn(path)(x), convert(model)(x))


def test_private_attributes_in_a_graph_are_refused(tmp_path):
    def edit(data):
        data["graph"]["nodes"].insert(
            1,
            {
                "name": "cls",
                "op": "call_function",
                "target": "builtins:getattr",
                "args": [{"__node__": _node(data, "placeholder")["name"]}, "__class__"],
                "kwargs": {},
            },
        )

    path = tampered(saved(tmp_path), edit)
    with pytest.raises(CheckpointError, match=r"'__class__'.*public names"):
        load_snn(path)


@fx.wrap
def halve(t):
    return t / 2


class UsesOwnFunction(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(3.0))
        self.fc, self.act = nn.Linear(4, 3), QCFS(2, 1.0)

    def forward(self, x):
        return self.act(self.fc(x)) * halve(self.scale)


def test_a_network_that_calls_its_own_function_is_not_saved(tmp_path):
    snn = convert(UsesOwnFunction().eval(), example_input=torch.zeros(2, 4))
    with pytest.raises(ConversionError, match=r"graph node 'halve'.*halve.*tensor operations"):
        snn.save(tmp_path / "snn.pt")
    assert not list(tmp_path.iterdir())


# --- tracing --------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:`torch.jit.trace.*is deprecated:FutureWarning")
def test_tracing_and_export_are_refused_loudly():
    model, x = model_and_input("cnn")
    snn = convert(model, example_input=x)
    with pytest.raises(ConversionError, match="cannot be traced, exported or compiled"):
        torch.jit.trace(snn, x)
    with pytest.raises(ConversionError, match="cannot be traced"):
        torch.jit.trace(snn.graph, x)  # the build alone: its IF layers refuse
    with pytest.raises(Exception, match="cannot be traced"):
        torch.export.export(snn, (x,))
    snn.reset_stats()
    assert torch.equal(snn(x), convert(model)(x))  # an eager run is untouched
    assert all(isinstance(f, PascIF) and int(f.output_spikes) > 0 for _, f in snn.if_layers())


class OddName(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleDict({"fc-1": nn.Linear(4, 3)})
        self.act = QCFS(2, 1.0)

    def forward(self, x):
        return self.blocks["fc-1"](self.act(x))


def test_a_network_a_load_would_refuse_is_refused_at_save(tmp_path):
    snn = convert(OddName().eval(), example_input=torch.zeros(2, 4))
    with pytest.raises(ConversionError, match=r"'blocks.fc-1', which is not a name"):
        snn.save(tmp_path / "snn.pt")
    assert not list(tmp_path.iterdir())


def test_a_tampered_method_chain_that_would_write_a_file_runs_nothing(tmp_path):
    """Methods are checked by the converter's table before the graph runs: a file whose graph
    calls ``x.numpy().tofile(path)`` is refused and no file appears."""
    target = tmp_path / "written"

    def chain(data):
        nodes = data["graph"]["nodes"]
        first = nodes[0]["name"]
        nodes[1:1] = [
            {
                "name": "np_",
                "op": "call_method",
                "target": "numpy",
                "args": [{"__node__": first}],
                "kwargs": {},
            },
            {
                "name": "w_",
                "op": "call_method",
                "target": "tofile",
                "args": [{"__node__": "np_"}, str(target)],
                "kwargs": {},
            },
        ]

    path = tampered(saved(tmp_path), chain)
    with pytest.raises(CheckpointError, match="numpy"):
        load_snn(path)
    assert not target.exists()
