"""Build the optional C kernel ``pascal_snn._kernel``; all other metadata is in pyproject.toml.

The kernel is plain C (no Python or torch headers), so the build needs only a C compiler, not
torch. It is optional: where it does not compile (no compiler, an unsupported one), the
install still succeeds and pascal_snn uses its torch code, which gives the same results.
Flags: -ffp-contract=off (no fused multiply-add: every result must round exactly as torch's
separate operations) and -fno-trapping-math (lets the compiler compute both sides of a
select, so the loops vectorize; it changes no result, only floating-point exception flags).
"""

from setuptools import Extension, setup

KERNEL = Extension(
    "pascal_snn._kernel",
    sources=["src/pascal_snn/_kernel.c"],
    depends=["src/pascal_snn/_kernel_impl.h"],
    extra_compile_args=["-O3", "-std=c11", "-pthread", "-ffp-contract=off", "-fno-trapping-math"],
    extra_link_args=["-pthread"],
    optional=True,
)

setup(ext_modules=[KERNEL])
