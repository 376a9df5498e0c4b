"""The optional C kernel (pascal_snn/_kernel.c): built, loaded, refusing what it cannot run.

Its results are tested against the references where they are used: the IF neuron in
test_neuron.py, QCFS in test_qcfs.py, the AL histogram in test_al_streaming.py.
"""

import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest
import torch

from pascal_snn import kernel
from pascal_snn.neuron import pasc_if, pasc_if_reference

SOURCE = Path(kernel.__file__).with_name("_kernel.c")


def c_compiler() -> str | None:
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    return shutil.which(cc) or shutil.which("cc")


def compile_kernel(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    cc = c_compiler()
    assert cc is not None
    out = tmp_path / "k.so"
    args = [cc, "-std=c11", "-O1", "-fPIC", "-shared", "-pthread", "-ffp-contract=off"]
    return subprocess.run(
        [*args, "-fno-trapping-math", *flags, str(SOURCE), "-o", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.skipif(c_compiler() is None, reason="no C compiler: the torch path is the product")
def test_kernel_is_built_where_a_compiler_exists():
    assert kernel.available(), (
        "a C compiler is present but pascal_snn/_kernel*.so is missing or stale: "
        "run `pip install -e .` or `python setup.py build_ext --inplace`"
    )
    isas = [k.isa for k in kernel.variants()]
    assert isas[0] == "base" and kernel.library().isa == isas[-1]


@pytest.mark.skipif(c_compiler() is None, reason="no C compiler")
def test_source_compiles_without_warnings_and_refuses_fast_math(tmp_path):
    clean = compile_kernel(tmp_path, "-Wall", "-Wextra", "-Werror")
    assert clean.returncode == 0, clean.stderr
    fast = compile_kernel(tmp_path, "-ffast-math")
    assert fast.returncode != 0 and "fast-math" in fast.stderr


def test_kernel_declines_what_it_cannot_run():
    x = torch.randn(3, 10)
    assert kernel.pasc_if(x.half(), 0.5, 2, 2, True, True) is None  # dtype
    assert kernel.pasc_if(x[:, ::2], 0.5, 2, 2, True, True) is None  # a step with gaps
    assert kernel.pasc_if(x.T.contiguous().T, 0.5, 2, 2, True, True) is None  # steps interleaved
    assert kernel.pasc_if(torch.randn(4, 1).expand(4, 5), 0.5, 2, 3, True, True) is None
    assert kernel.qcfs_forward(torch.randn(4, 1).expand(4, 5), 1.0, 2) is None  # overlapping
    assert kernel.qcfs_forward(torch.randn(4, 6)[:, ::2], 1.0, 2) is None
    hist = torch.zeros(3, dtype=torch.int64)
    assert kernel.level_histogram(x, 1.0, 2, hist.int()) is None
    big = 1 << 20  # float bin indices: the kernel declines, the torch path counts
    assert kernel.level_histogram(x, 1.0, big, torch.zeros(big + 1, dtype=torch.int64)) is None
    if kernel.available():
        with pytest.raises(ValueError, match="L \\+ 1"):
            kernel.level_histogram(x, 1.0, 3, hist)


def test_fallback_gives_the_reference_where_the_kernel_declines():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 8, 6, generator=g)[:, :, ::2]  # not dense: the torch path runs
    theta = torch.tensor(1.7)
    assert torch.equal(pasc_if(x, theta, 3)[0], pasc_if_reference(x, theta, 3)[0])


def test_dense_layouts():
    x = torch.randn(2, 3, 4, 5)
    assert kernel._dense(x) and kernel._dense(x.permute(0, 2, 3, 1))
    assert kernel._dense(x.contiguous(memory_format=torch.channels_last))
    assert kernel._dense(torch.empty(0, 3)) and kernel._dense(torch.randn(1, 1, 7)[:, :, :1])
    assert not kernel._dense(x[:, :, ::2]) and not kernel._dense(x[:, :2])
    assert not kernel._dense(torch.randn(5, 1).expand(5, 3))


@pytest.mark.skipif(not kernel.available(), reason="no kernel built")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("t_in", "L"), [(4, 4), (6, 3), (5, 1)])
def test_train_can_overwrite_its_input(dtype, t_in, L):
    """With T_in ≥ L the train may be written over the input (the spent conv output)."""
    g = torch.Generator().manual_seed(t_in * 10 + L)
    x = (torch.randn(t_in, 2000, generator=g, dtype=torch.float64) * 2).to(dtype)
    theta = torch.tensor(2.2, dtype=dtype)
    spike = float((theta / L).to(dtype))
    ref, c_ref = pasc_if_reference(x, theta, L)
    expected = (torch.arange(L).view(L, 1) < ref).to(dtype) * spike
    steps = max(t_in, L) - 1
    for k in kernel.variants():
        for threads in (1, 3):
            work = x.clone()
            tuning = kernel.Tuning(k, threads, grain=1)
            got = kernel.pasc_if(work, spike, L, steps, True, False, tuning, out=work[:L])
            assert got is not None and got[0].data_ptr() == work.data_ptr()
            assert torch.equal(work[:L], expected), (k.isa, threads)
            assert got[2] == (int(c_ref.excitatory), int(c_ref.inhibitory), int(c_ref.output))


@pytest.mark.skipif(not kernel.available(), reason="no kernel built")
def test_out_that_cannot_hold_the_train_is_refused():
    storage = torch.randn(4, 40)
    x = storage[:3]
    assert kernel.pasc_if(x, 0.5, 4, 3, True, False, out=torch.empty(4, 40)) is not None
    with pytest.raises(ValueError, match="does not fit"):
        kernel.pasc_if(x, 0.5, 4, 3, True, False, out=storage)  # 4 steps over 3 inputs
    with pytest.raises(ValueError, match="must have the layout"):
        kernel.pasc_if(x, 0.5, 2, 2, True, False, out=torch.empty(40, 2).T)
    with pytest.raises(ValueError, match="overlaps"):
        kernel.pasc_if(x, 0.5, 2, 2, True, False, out=x[1:])
    with pytest.raises(ValueError, match="must be"):
        kernel.pasc_if(x, 0.5, 2, 2, True, False, out=torch.empty(2, 41))
