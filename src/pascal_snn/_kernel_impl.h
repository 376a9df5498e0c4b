/* Type-generic bodies of the kernels in _kernel.c, included once per floating type and
 * instruction set.
 *
 * Before inclusion: REAL (float or double), SFX (f32 or f64), CINT (the per-lane spike
 * counter: int32_t beside float, int64_t beside double, so counter and membrane lanes have
 * the same width and the loops vectorize), FLOOR and RINT (the REAL builtins), ISA (the
 * variant's name suffix) and KERNEL_TARGET (its function attribute, or nothing).
 *
 * Every floating operation below is one IEEE operation of type REAL, in the order of the
 * Python reference; the file is compiled with -ffp-contract=off and without fast-math, so
 * vectorized code rounds exactly as scalar code.
 */

#define CAT_(a, b, c) a##_##b##_##c
#define CAT(a, b, c) CAT_(a, b, c)
#define FN(name) CAT(name, SFX, ISA)

/* ---- PASC IF neuron (paper Algorithm 1) on neurons [lo, hi) of x[t_in][n] ---------------- */

typedef struct {
    const REAL *x;
    const REAL *y;   /* [t_in][n] added to x step by step (a fused residual add); or NULL */
    REAL *train;     /* [L][n] output train, values on/off; NULL: not written */
    int64_t *count;  /* [n] clamp(count, 0, L); NULL: not written */
    int64_t t_in, n, L, steps, lo, hi;
    REAL spike;
    int64_t totals[3]; /* excitatory, inhibitory, output spikes of this range */
} FN(if_job);

/* Vector types of this variant (VBYTES wide), loadable from unaligned addresses. */
typedef REAL FN(vr) __attribute__((vector_size(VBYTES), may_alias, aligned(sizeof(REAL))));
typedef CINT FN(vi) __attribute__((vector_size(VBYTES), may_alias, aligned(sizeof(REAL))));
#define VR FN(vr)
#define VI FN(vi)
#define VN ((int64_t)(VBYTES / sizeof(REAL)))
/* the lanes of a where m is true (all bits set), else those of b */
#define SEL(m, a, b) ((VR)(((m) & (VI)(a)) | (~(m) & (VI)(b))))

/* every lane = v, bit for bit (vzero + v would turn -0.0 into +0.0) */
static inline KERNEL_TARGET VR FN(splat)(REAL v) {
    VR out;
    for (int64_t l = 0; l < VN; l++)
        out[l] = v;
    return out;
}

static inline KERNEL_TARGET int FN(any)(VI v) {
    CINT acc = 0;
    for (int64_t l = 0; l < VN; l++)
        acc |= v[l];
    return acc != 0;
}

/* Input step t of neuron j: x, or x + y (one IEEE addition, as the unfused add computes it). */
#define IF_IN(job, t, j) ((job)->y ? (job)->x[(t) * (job)->n + (j)] + (job)->y[(t) * (job)->n + (j)] \
                                   : (job)->x[(t) * (job)->n + (j)])

/* One neuron, scalar: the tail of a chunk that fills no whole vector. Same operations. */
static KERNEL_TARGET void FN(if_one)(const FN(if_job) *job, int64_t j, int64_t *totals) {
    const REAL spike = job->spike, zero = 0;
    REAL m = (REAL)0.5 * spike + IF_IN(job, 0, j);
    CINT f = m >= spike;
    m = f ? m - spike : m;
    CINT cnt = f, neg = 0;
    for (int64_t t = 1; t < job->t_in; t++) {
        m = m + IF_IN(job, t, j);
        f = m >= spike;
        m = f ? m - spike : m;
        cnt += f;
    }
    for (int64_t s = 0; s < job->steps; s++) {
        f = m >= spike;
        const CINT g = (m < zero) & !f;
        if (!(f | g))
            break;
        m = f ? m - spike : (g ? m + spike : m);
        cnt += f - g;
        neg += g;
    }
    const int64_t c = cnt < 0 ? 0 : (cnt > job->L ? job->L : cnt);
    totals[0] += (int64_t)cnt + neg;
    totals[1] += neg;
    totals[2] += c;
    if (job->count)
        job->count[j] = c;
    if (job->train)
        for (int64_t k = 0; k < job->L; k++)
            job->train[k * job->n + j] = (REAL)(k < c) * spike;
}

/* Neurons [lo, hi), VN at a time with every state in registers: stage 1 over T_in inputs,
 * stage 2 (stopping once a step changes no lane: checked every fourth step), stage 3. */
static KERNEL_TARGET void FN(if_range)(FN(if_job) *job) {
    const REAL spike = job->spike;
    const VR vzero = FN(splat)(0);
    const VR vspike = FN(splat)(spike);
    const VR vhalf = FN(splat)((REAL)0.5 * spike); /* the reference's full_like(x, 0.5) * spike */
    const VR von = FN(splat)((REAL)1 * spike);     /* thermometer: [k < c] as 1/0, times spike */
    const VR voff = FN(splat)((REAL)0 * spike);    /* -0.0 when spike < 0, as 0 * spike */
    const VI izero = {0};
    const VI vL = izero + (CINT)job->L;
    const REAL *x = job->x, *y = job->y;
    const int64_t n = job->n, t_in = job->t_in, L = job->L, steps = job->steps;
    /* per-lane totals, flushed to int64 before a 32-bit lane could overflow */
    const int64_t per_group = t_in + steps + L + 1;
    const int64_t flush = per_group < ((int64_t)1 << 29) ? ((int64_t)1 << 29) / per_group : 1;
    int64_t totals[3] = {0, 0, 0}, since = 0;
    VI raw_acc = izero, neg_acc = izero, kept_acc = izero;
    int64_t j = job->lo;
    for (; j + VN <= job->hi; j += VN) {
        /* stage 1: mem = spike/2 + X[1], then mem += X[t]; it fires when mem >= spike
         * (X[t] = x[t] + y[t] when an add is fused in) */
        VR in = *(const VR *)(x + j);
        if (y)
            in = in + *(const VR *)(y + j);
        VR mem = vhalf + in;
        VI f = mem >= vspike;
        mem = SEL(f, mem - vspike, mem);
        VI cnt = izero - f; /* a true comparison is -1 */
        for (int64_t t = 1; t < t_in; t++) {
            in = *(const VR *)(x + t * n + j);
            if (y)
                in = in + *(const VR *)(y + t * n + j);
            mem = mem + in;
            f = mem >= vspike;
            mem = SEL(f, mem - vspike, mem);
            cnt -= f;
        }
        /* stage 2: excitatory when mem >= spike, else inhibitory when mem < 0 */
        VI neg = izero;
        for (int64_t s = 0; s < steps; s++) {
            f = mem >= vspike;
            const VI g = (mem < vzero) & ~f;
            if ((s & 3) == 3 && !FN(any)(f | g))
                break; /* no lane changes in this step, so none in any later one */
            mem = SEL(f, mem - vspike, SEL(g, mem + vspike, mem));
            cnt = cnt - f + g;
            neg -= g;
        }
        const VI c = (VI)SEL(cnt < izero, izero, SEL(cnt > vL, vL, cnt));
        raw_acc += cnt;
        neg_acc += neg;
        kept_acc += c;
        if (++since == flush) {
            for (int64_t l = 0; l < VN; l++) {
                totals[0] += (int64_t)raw_acc[l] + neg_acc[l];
                totals[1] += neg_acc[l];
                totals[2] += kept_acc[l];
            }
            raw_acc = neg_acc = kept_acc = izero;
            since = 0;
        }
        if (job->count)
            for (int64_t l = 0; l < VN; l++)
                job->count[j + l] = c[l];
        /* stage 3: the thermometer code, out[k] = spike for k < clamp(count, 0, L) */
        if (job->train) {
            VI vk = izero;
            for (int64_t k = 0; k < L; k++) {
                *(VR *)(job->train + k * n + j) = SEL(vk < c, von, voff);
                vk += 1;
            }
        }
    }
    for (int64_t l = 0; l < VN; l++) {
        totals[0] += (int64_t)raw_acc[l] + neg_acc[l];
        totals[1] += neg_acc[l];
        totals[2] += kept_acc[l];
    }
    for (; j < job->hi; j++)
        FN(if_one)(job, j, totals);
    job->totals[0] = totals[0];
    job->totals[1] = totals[1];
    job->totals[2] = totals[2];
}

#undef SEL
#undef IF_IN
#undef VN
#undef VI
#undef VR

static void *FN(if_worker)(void *arg) {
    FN(if_range)((FN(if_job) *)arg);
    return NULL;
}

/* Returns 0, or -1 when a thread could not be started (nothing is then valid). */
int FN(pasc_if)(const REAL *x, const REAL *y, int64_t t_in, int64_t n, REAL spike, int64_t L,
                int64_t steps, REAL *train, int64_t *count, int64_t *totals, int threads,
                int64_t grain) {
    FN(if_job) jobs[MAX_THREADS];
    pthread_t ids[MAX_THREADS];
    const int used = split(n, threads, ((y ? 2 : 1) * t_in + L) * (int64_t)sizeof(REAL), grain);
    int64_t bounds[MAX_THREADS + 1];
    chunk_bounds(n, used, bounds);
    for (int i = 0; i < used; i++) {
        FN(if_job) job = {x, y, train, count, t_in, n, L, steps, bounds[i], bounds[i + 1],
                          spike, {0, 0, 0}};
        jobs[i] = job;
    }
    int started = 0, failed = 0;
    for (int i = 1; i < used; i++) {
        if (pthread_create(&ids[i], NULL, FN(if_worker), &jobs[i]) != 0) {
            failed = 1;
            break;
        }
        started = i;
    }
    if (!failed)
        FN(if_range)(&jobs[0]);
    for (int i = 1; i <= started; i++)
        pthread_join(ids[i], NULL);
    if (failed)
        return -1;
    for (int k = 0; k < 3; k++) {
        totals[k] = 0;
        for (int i = 0; i < used; i++)
            totals[k] += jobs[i].totals[k];
    }
    return 0;
}

/* ---- the input layer (paper Algorithm 2) on neurons [lo, hi) of x[n] ----------------------- */

typedef struct {
    const REAL *x;
    REAL *train; /* [L][n] */
    int64_t n, L, lo, hi;
    REAL theta, levels, spike;
    int64_t totals[2]; /* excitatory (= output), inhibitory */
    int nan;           /* a NaN input was seen: nothing is valid, the caller uses torch */
} FN(input_job);

/* k = floor(x*L/theta + 1/2) as QCFS computes it (the ANN's own formula); count = clamp(k, 0, L);
 * train[s] = [s < count]*spike; excitatory += count, inhibitory += clamp(-k, 0, L - 1). */
static KERNEL_TARGET void FN(input_range)(FN(input_job) *job) {
    const REAL theta = job->theta, levels = job->levels, spike = job->spike, zero = 0;
    const REAL top = levels - 1;
    const REAL on = (REAL)1 * spike, off = (REAL)0 * spike;
    const REAL *x = job->x;
    const int64_t n = job->n, L = job->L;
    int64_t exc = 0, inh = 0;
    int nan = 0;
    REAL counts[BLOCK];
    for (int64_t j0 = job->lo; j0 < job->hi; j0 += BLOCK) {
        const int64_t jn = job->hi - j0 < BLOCK ? job->hi - j0 : BLOCK;
        /* per-block sums in CINT lanes (at most BLOCK·L: the caller keeps L < 2^21), so the
         * loop vectorizes; they are exact integers, added to the int64 totals per block */
        CINT exc_block = 0, inh_block = 0, nan_block = 0;
        for (int64_t j = 0; j < jn; j++) {
            const REAL raw = FLOOR(x[j0 + j] * levels / theta + (REAL)0.5);
            nan_block |= raw != raw;
            const REAL k = raw == raw ? raw : zero; /* no NaN reaches an integer conversion */
            /* the clamps one comparison at a time: GCC vectorizes these, not nested ones */
            REAL c = k < zero ? zero : k;
            c = c > levels ? levels : c;
            REAL m = -k;
            m = m < zero ? zero : m;
            m = m > top ? top : m;
            counts[j] = c;
            exc_block += (CINT)c;
            inh_block += (CINT)m;
        }
        exc += exc_block;
        inh += inh_block;
        nan |= nan_block != 0;
        for (int64_t s = 0; s < L; s++) {
            REAL *out = job->train + s * n + j0;
            const REAL step = (REAL)s;
            for (int64_t j = 0; j < jn; j++)
                out[j] = step < counts[j] ? on : off;
        }
    }
    job->totals[0] = exc;
    job->totals[1] = inh;
    job->nan = nan;
}

static void *FN(input_worker)(void *arg) {
    FN(input_range)((FN(input_job) *)arg);
    return NULL;
}

/* Returns 0; 1 when x holds a NaN (then nothing is valid); -1 when a thread did not start. */
int FN(pasc_input)(const REAL *x, int64_t n, REAL theta, int64_t L, REAL spike, REAL *train,
                   int64_t *totals, int threads, int64_t grain) {
    FN(input_job) jobs[MAX_THREADS];
    pthread_t ids[MAX_THREADS];
    const int used = split(n, threads, (1 + L) * (int64_t)sizeof(REAL), grain);
    int64_t bounds[MAX_THREADS + 1];
    chunk_bounds(n, used, bounds);
    for (int i = 0; i < used; i++) {
        FN(input_job) job = {x, train, n, L, bounds[i], bounds[i + 1], theta, (REAL)L, spike,
                             {0, 0}, 0};
        jobs[i] = job;
    }
    int started = 0, failed = 0;
    for (int i = 1; i < used; i++) {
        if (pthread_create(&ids[i], NULL, FN(input_worker), &jobs[i]) != 0) {
            failed = 1;
            break;
        }
        started = i;
    }
    if (!failed)
        FN(input_range)(&jobs[0]);
    for (int i = 1; i <= started; i++)
        pthread_join(ids[i], NULL);
    if (failed)
        return -1;
    totals[0] = totals[1] = 0;
    int nan = 0;
    for (int i = 0; i < used; i++) {
        totals[0] += jobs[i].totals[0];
        totals[1] += jobs[i].totals[1];
        nan |= jobs[i].nan;
    }
    return nan ? 1 : 0;
}

/* ---- vanilla IF neuron (SPEC 4), one step, in place on the membrane ---------------------- */

typedef struct {
    const REAL *x;
    REAL *mem, *out;
    int64_t lo, hi;
    REAL theta;
} FN(vanilla_job);

/* mem = mem + x; f = [mem >= theta]; mem = mem - f*theta; out = f*theta, as vanilla_if_step
 * computes them (f a 0/1 REAL). out may be x itself: each element reads x before writing. */
static KERNEL_TARGET void FN(vanilla_range)(FN(vanilla_job) *job) {
    const REAL theta = job->theta;
    const REAL *x = job->x;
    REAL *mem = job->mem, *out = job->out;
    for (int64_t i = job->lo; i < job->hi; i++) {
        const REAL m = mem[i] + x[i];
        const REAL f = m >= theta ? (REAL)1 : (REAL)0;
        const REAL spike = f * theta;
        mem[i] = m - spike;
        out[i] = spike;
    }
}

static void *FN(vanilla_worker)(void *arg) {
    FN(vanilla_range)((FN(vanilla_job) *)arg);
    return NULL;
}

int FN(vanilla_if)(const REAL *x, REAL *mem, REAL *out, int64_t n, REAL theta, int threads,
                   int64_t grain) {
    FN(vanilla_job) jobs[MAX_THREADS];
    pthread_t ids[MAX_THREADS];
    const int used = split(n, threads, 4 * (int64_t)sizeof(REAL), grain);
    int64_t bounds[MAX_THREADS + 1];
    chunk_bounds(n, used, bounds);
    for (int i = 0; i < used; i++) {
        FN(vanilla_job) job = {x, mem, out, bounds[i], bounds[i + 1], theta};
        jobs[i] = job;
    }
    int started = 0, failed = 0;
    for (int i = 1; i < used; i++) {
        if (pthread_create(&ids[i], NULL, FN(vanilla_worker), &jobs[i]) != 0) {
            failed = 1;
            break;
        }
        started = i;
    }
    if (!failed)
        FN(vanilla_range)(&jobs[0]);
    for (int i = 1; i <= started; i++)
        pthread_join(ids[i], NULL);
    return failed ? -1 : 0;
}

/* ---- QCFS h = theta*clamp(floor(x*L/theta + 1/2)/L, 0, 1) and its backward --------------------------- */

typedef struct {
    const REAL *x, *grad;
    REAL *y;           /* forward output / backward input gradient */
    int64_t *hist;     /* level histogram [L + 1] (histogram job only) */
    int64_t lo, hi, L, bad;
    REAL theta, levels;
    double sums[2];    /* backward: sum grad*c, sum (grad*m)*x */
} FN(qcfs_job);

/* floor(x*L/theta + 1/2)/L: the quantized value before clipping, as the reference computes it */
#define QUANTIZED(xv) (FLOOR((xv) * levels / theta + (REAL)0.5) / levels)

static KERNEL_TARGET void FN(qcfs_range)(FN(qcfs_job) *job) {
    const REAL theta = job->theta, levels = job->levels, zero = 0, one = 1;
    const REAL *x = job->x;
    REAL *y = job->y;
    for (int64_t i = job->lo; i < job->hi; i++) {
        const REAL v = QUANTIZED(x[i]);
        /* clamp(v, 0, 1) keeping NaN, as torch.clamp */
        const REAL c = v < zero ? zero : (v > one ? one : v);
        y[i] = theta * c;
    }
}

static KERNEL_TARGET void FN(qcfs_backward_range)(FN(qcfs_job) *job) {
    const REAL theta = job->theta, levels = job->levels, zero = 0, one = 1;
    const REAL *x = job->x, *grad = job->grad;
    REAL *gx = job->y;
    /* LANES independent running sums (each one a sequential sum, so vectorizing changes no
     * rounding), widened to double, added up in a fixed order at the end */
    double s1[LANES] = {0}, s2[LANES] = {0};
    int64_t i = job->lo;
    for (; i + LANES <= job->hi; i += LANES) {
        for (int l = 0; l < LANES; l++) {
            const REAL xv = x[i + l], g = grad[i + l];
            const REAL v = QUANTIZED(xv);
            const REAL c = v < zero ? zero : (v > one ? one : v);
            const REAL inside = (v >= zero) & (v <= one) ? one : zero;
            const REAL m = g * inside;
            gx[i + l] = m;
            s1[l] += (double)(g * c);
            s2[l] += (double)(m * xv);
        }
    }
    for (int l = 0; i < job->hi; i++, l++) {
        const REAL xv = x[i], g = grad[i];
        const REAL v = QUANTIZED(xv);
        const REAL c = v < zero ? zero : (v > one ? one : v);
        const REAL inside = (v >= zero) & (v <= one) ? one : zero;
        const REAL m = g * inside;
        gx[i] = m;
        s1[l] += (double)(g * c);
        s2[l] += (double)(m * xv);
    }
    job->sums[0] = job->sums[1] = 0;
    for (int l = 0; l < LANES; l++) {
        job->sums[0] += s1[l];
        job->sums[1] += s2[l];
    }
}

/* level histogram of QCFS outputs h: k = round_half_even(h*L/theta), bins 0 ... L. Per block,
 * a vectorized pass writes each element's bin (L + 1 for an index outside 0 ... L); then, for
 * small L, one vectorized compare-and-count pass per bin, else four interleaved scalar
 * sub-histograms (independent increments, no store-to-load chain). */
static KERNEL_TARGET void FN(histogram_range)(FN(qcfs_job) *job) {
    const REAL theta = job->theta, levels = job->levels, zero = 0;
    const REAL *h = job->x;
    const int64_t L = job->L;
    int64_t *hist = job->hist, bad = 0;
    CINT bins[BLOCK];
    int64_t sub[4][HIST_SCALAR_MAX + 2];
    if (L > HIST_VECTOR_MAX && L <= HIST_SCALAR_MAX)
        for (int r = 0; r < 4; r++)
            for (int64_t b = 0; b <= L + 1; b++)
                sub[r][b] = 0;
    for (int64_t j0 = job->lo; j0 < job->hi; j0 += BLOCK) {
        const int64_t jn = job->hi - j0 < BLOCK ? job->hi - j0 : BLOCK;
        const REAL *hb = h + j0;
        for (int64_t j = 0; j < jn; j++) {
            const REAL k = RINT(hb[j] * levels / theta);
            /* NaN and indices outside 0 ... L go to bin L + 1 (exact: L < 2^20) */
            const REAL kept = (k >= zero) & (k <= levels) ? k : levels + 1;
            bins[j] = (CINT)kept;
        }
        if (L <= HIST_VECTOR_MAX) {
            for (int64_t b = 0; b <= L + 1; b++) {
                CINT n = 0;
                const CINT bb = (CINT)b;
                for (int64_t j = 0; j < jn; j++)
                    n += bins[j] == bb;
                if (b <= L)
                    hist[b] += n;
                else
                    bad += n;
            }
        } else if (L <= HIST_SCALAR_MAX) {
            int64_t j = 0;
            for (; j + 4 <= jn; j += 4) {
                sub[0][bins[j]]++;
                sub[1][bins[j + 1]]++;
                sub[2][bins[j + 2]]++;
                sub[3][bins[j + 3]]++;
            }
            for (; j < jn; j++)
                sub[0][bins[j]]++;
        } else {
            for (int64_t j = 0; j < jn; j++) {
                if (bins[j] <= L)
                    hist[bins[j]]++;
                else
                    bad++;
            }
        }
    }
    if (L > HIST_VECTOR_MAX && L <= HIST_SCALAR_MAX) {
        for (int64_t b = 0; b <= L; b++)
            hist[b] += sub[0][b] + sub[1][b] + sub[2][b] + sub[3][b];
        bad += sub[0][L + 1] + sub[1][L + 1] + sub[2][L + 1] + sub[3][L + 1];
    }
    job->bad = bad;
}

static void *FN(qcfs_worker)(void *arg) {
    FN(qcfs_range)((FN(qcfs_job) *)arg);
    return NULL;
}

static void *FN(qcfs_backward_worker)(void *arg) {
    FN(qcfs_backward_range)((FN(qcfs_job) *)arg);
    return NULL;
}

static void *FN(histogram_worker)(void *arg) {
    FN(histogram_range)((FN(qcfs_job) *)arg);
    return NULL;
}

/* Runs `work` on `used` consecutive chunks of [0, n), chunk 0 on the calling thread. */
static int FN(run_qcfs)(FN(qcfs_job) *jobs, int used, void *(*work)(void *)) {
    pthread_t ids[MAX_THREADS];
    int started = 0, failed = 0;
    for (int i = 1; i < used; i++) {
        if (pthread_create(&ids[i], NULL, work, &jobs[i]) != 0) {
            failed = 1;
            break;
        }
        started = i;
    }
    if (!failed)
        work(&jobs[0]);
    for (int i = 1; i <= started; i++)
        pthread_join(ids[i], NULL);
    return failed ? -1 : 0;
}

static int FN(qcfs_jobs)(FN(qcfs_job) *jobs, int64_t n, int threads, int64_t grain,
                         int64_t bytes, const REAL *x, const REAL *grad, REAL *y, REAL theta,
                         int64_t L) {
    const int used = split(n, threads, bytes, grain);
    int64_t bounds[MAX_THREADS + 1];
    chunk_bounds(n, used, bounds);
    for (int i = 0; i < used; i++) {
        FN(qcfs_job) job = {x, grad, y, NULL, bounds[i], bounds[i + 1], L, 0,
                            theta, (REAL)L, {0, 0}};
        jobs[i] = job;
    }
    return used;
}

int FN(qcfs_forward)(const REAL *x, REAL *y, int64_t n, REAL theta, int64_t L, int threads,
                     int64_t grain) {
    FN(qcfs_job) jobs[MAX_THREADS];
    const int used = FN(qcfs_jobs)(jobs, n, threads, grain, 2 * sizeof(REAL), x, NULL, y, theta,
                                   L);
    return FN(run_qcfs)(jobs, used, FN(qcfs_worker));
}

/* gx = grad*m; sums = (sum grad*c, sum gx*x), m and c recomputed from x */
int FN(qcfs_backward)(const REAL *grad, const REAL *x, REAL *gx, int64_t n, REAL theta,
                      int64_t L, double *sums, int threads, int64_t grain) {
    FN(qcfs_job) jobs[MAX_THREADS];
    const int used = FN(qcfs_jobs)(jobs, n, threads, grain, 3 * sizeof(REAL), x, grad, gx,
                                   theta, L);
    if (FN(run_qcfs)(jobs, used, FN(qcfs_backward_worker)) != 0)
        return -1;
    sums[0] = sums[1] = 0;
    for (int i = 0; i < used; i++) {
        sums[0] += jobs[i].sums[0];
        sums[1] += jobs[i].sums[1];
    }
    return 0;
}

/* hist[k] += #{i: round(h[i]*L/theta) = k}; returns how many indices fell outside 0 ... L, or -1 */
int64_t FN(level_histogram)(const REAL *h, int64_t n, REAL theta, int64_t L, int64_t *hist,
                            int threads, int64_t grain) {
    FN(qcfs_job) jobs[MAX_THREADS];
    int64_t *local = NULL;
    const int used = FN(qcfs_jobs)(jobs, n, threads, grain, sizeof(REAL), h, NULL, NULL, theta,
                                   L);
    if (used > 1) {
        local = calloc((size_t)(used * (L + 1)), sizeof(int64_t));
        if (!local)
            return -1;
    }
    for (int i = 0; i < used; i++)
        jobs[i].hist = i == 0 ? hist : local + i * (L + 1);
    int64_t bad = -1;
    if (FN(run_qcfs)(jobs, used, FN(histogram_worker)) == 0) {
        bad = 0;
        for (int i = 0; i < used; i++) {
            bad += jobs[i].bad;
            if (i > 0)
                for (int64_t k = 0; k <= L; k++)
                    hist[k] += jobs[i].hist[k];
        }
    }
    free(local);
    return bad;
}

#undef QUANTIZED
#undef FN
#undef CAT
#undef CAT_
