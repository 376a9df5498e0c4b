/* Single-pass CPU kernels of pascal-snn: the PASC and vanilla IF neurons, QCFS and the AL level
 * histogram.
 *
 * Plain C11 with POSIX threads: no Python or torch headers, so it builds in about a second
 * with any C compiler and needs no torch at build time. Python loads the shared library with
 * ctypes (pascal_snn.kernel) and passes data pointers of CPU tensors.
 *
 * Exactness: every result is bit-identical to the torch code in neuron.py and qcfs.py. The
 * floating operations are the reference's, one IEEE operation each, in the reference's order;
 * build with -ffp-contract=off (no fused multiply-add) and never with -ffast-math. Integer
 * spike counts are integers. Work is split over neurons (elements), never over time steps,
 * so the thread count cannot change any result except the summation order of the QCFS
 * backward's two float totals (fixed for a given thread count).
 *
 * Instruction sets: every kernel is compiled once per x86-64 level (base, v2 = SSE4.2,
 * v3 = AVX2, v4 = AVX-512) under its own name (pasc_if_f32_v3, ...), the IF neuron with GCC/Clang
 * vector extensions VBYTES wide (16, 16, 32, 64); the loader picks the highest level
 * pascal_kernel_isa_supported() reports, and tests run every supported level. Elsewhere only
 * "base" exists, compiled for the default target.
 */

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__FAST_MATH__)
#error "the kernel must not be built with -ffast-math: its results must be exact IEEE"
#endif
#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
#error "the kernel needs float and double evaluated in their own precision (FLT_EVAL_METHOD 0)"
#endif

#define BLOCK 512 /* neurons processed together: their state stays in L1 */
#define LANES 16  /* independent partial sums of the QCFS backward */
#define MAX_THREADS 64
#define HIST_VECTOR_MAX 16  /* up to this L, the histogram counts each bin with vector compares */
#define HIST_SCALAR_MAX 1024 /* up to this L, in four interleaved sub-histograms on the stack */

/* How many threads to use for n elements moving `bytes` bytes each: at most `threads`, and
 * only as many as give every thread at least `grain` bytes of work. */
static int split(int64_t n, int threads, int64_t bytes, int64_t grain) {
    if (threads < 1)
        threads = 1;
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    const int64_t worth = grain > 0 ? (n * bytes) / grain : n;
    if (worth < threads)
        threads = worth < 1 ? 1 : (int)worth;
    return threads;
}

/* Chunk boundaries of [0, n) in `used` pieces, each a multiple of BLOCK except the last. */
static void chunk_bounds(int64_t n, int used, int64_t *bounds) {
    const int64_t blocks = (n + BLOCK - 1) / BLOCK;
    for (int i = 0; i <= used; i++) {
        const int64_t b = blocks * i / used * BLOCK;
        bounds[i] = b < n ? b : n;
    }
}

/* The library's interface version, checked by the loader. */
int pascal_kernel_version(void) { return 4; }

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define PASCAL_X86 1
#endif

/* 1 if this CPU (and OS) runs variant `level` (0 base, 1 v2, 2 v3, 3 v4), else 0. */
int pascal_kernel_isa_supported(int level) {
    if (level == 0)
        return 1;
#ifdef PASCAL_X86
    __builtin_cpu_init();
    if (level == 1)
        return __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("popcnt");
    if (level == 2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
               __builtin_cpu_supports("bmi2");
    if (level == 3)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#endif
    return 0;
}

/* Each block below includes the bodies once per variant, for one floating type. */
#define REAL float
#define SFX f32
#define CINT int32_t
#define FLOOR __builtin_floorf
#define RINT __builtin_rintf
#define ISA base
#define KERNEL_TARGET
#define VBYTES 16
#include "_kernel_impl.h"
#undef ISA
#undef KERNEL_TARGET
#undef VBYTES
#ifdef PASCAL_X86
#define ISA v2
#define KERNEL_TARGET __attribute__((target("sse4.2,popcnt")))
#define VBYTES 16
#include "_kernel_impl.h"
#undef ISA
#undef KERNEL_TARGET
#undef VBYTES
#define ISA v3
#define KERNEL_TARGET __attribute__((target("avx2,fma,bmi,bmi2,popcnt,sse4.2")))
#define VBYTES 32
#include "_kernel_impl.h"
#undef ISA
#undef KERNEL_TARGET
#undef VBYTES
#define ISA v4
#define KERNEL_TARGET                                                                         \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,bmi,bmi2,popcnt,sse4.2")))
#define VBYTES 64
#include "_kernel_impl.h"
#undef ISA
#undef KERNEL_TARGET
#undef VBYTES
#endif
#undef REAL
#undef SFX
#undef CINT
#undef FLOOR
#undef RINT

#define REAL double
#define SFX f64
#define CINT int64_t
#define FLOOR __builtin_floor
#define RINT __builtin_rint
#define ISA base
#define KERNEL_TARGET
#define VBYTES 16
#include "_kernel_impl.h"
#undef ISA
#undef KERNEL_TARGET
#undef VBYTES
#ifdef PASCAL_X86
#define ISA v2
#define KERNEL_TARGET __attribute__((target("sse4.2,popcnt")))
#define VBYTES 16
#include "_kernel_impl.h"
#undef ISA
#undef KERNEL_TARGET
#undef VBYTES
#define ISA v3
#define KERNEL_TARGET __attribute__((target("avx2,fma,bmi,bmi2,popcnt,sse4.2")))
#define VBYTES 32
#include "_kernel_impl.h"
#undef ISA
#undef KERNEL_TARGET
#undef VBYTES
#define ISA v4
#define KERNEL_TARGET                                                                         \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma,bmi,bmi2,popcnt,sse4.2")))
#define VBYTES 64
#include "_kernel_impl.h"
#undef ISA
#undef KERNEL_TARGET
#undef VBYTES
#endif
#undef REAL
#undef SFX
#undef CINT
#undef FLOOR
#undef RINT
