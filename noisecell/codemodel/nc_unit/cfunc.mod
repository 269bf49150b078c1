/* noisecell breakpoint-free unit white-noise source: see ifspec.ifs and noisecell/noise.py.

   Samples: z_k = sqrt(-2 ln u1) cos(2 pi u2) (Box-Muller), u1, u2 the 53-bit uniforms of outputs
   2k and 2k+1 of a splitmix64 stream whose state starts at key = mix(mix(seed) ^ fnv1a(node name)).
   splitmix64's i-th output is mix(key + (i+1) gamma): a pure function of (key, i), so the value at
   any time is computed directly, whatever steps, rejections or retries the solver took before.
   The stream key comes from the (flattened, lower-case) name of the node the source drives, which
   is unique per source in a circuit (each unit node has exactly one driver), also for sources
   inside subcircuit instances. The cache holds the last pair (z_k, z_k+1); it is a pure cache. */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#define NC_GAMMA 0x9e3779b97f4a7c15ULL

typedef struct {
    uint64_t key;
    long long k;      /* index of the cached pair, -1: none */
    double z0, z1;    /* z_k, z_{k+1} */
} nc_unit_cache_t;

static uint64_t nc_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t nc_fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    if (s)
        for (; *s; s++) {
            h ^= (uint64_t)(unsigned char)*s;
            h *= 0x100000001b3ULL;
        }
    return h;
}

/* the i-th output of the splitmix64 stream with state key, as a uniform in (0, 1] */
static double nc_uniform(uint64_t key, uint64_t i)
{
    return (double)((nc_mix(key + (i + 1) * NC_GAMMA) >> 11) + 1) * (1.0 / 9007199254740992.0);
}

static double nc_gauss(uint64_t key, long long k)
{
    double u1, u2;
    if (k <= 0)
        return 0.0;  /* z_0 = 0: the noise starts from the noiseless operating point */
    u1 = nc_uniform(key, 2 * (uint64_t)k);
    u2 = nc_uniform(key, 2 * (uint64_t)k + 1);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static void nc_unit_free(ARGS, Mif_Callback_Reason_t reason)
{
    if (reason == MIF_CB_DESTROY) {
        free(STATIC_VAR(cache));
        STATIC_VAR(cache) = NULL;
    }
}

void cm_nc_unit(ARGS)
{
    nc_unit_cache_t *c;
    double nt, t, x, th, h;
    long long k, kn;

    if (INIT) {
        c = (nc_unit_cache_t *) malloc(sizeof(nc_unit_cache_t));
        STATIC_VAR(cache) = c;
        c->key = nc_mix(nc_mix((uint64_t)(uint32_t)PARAM(seed)) ^ nc_fnv1a(cm_get_node_name("out", 0)));
        c->k = -1;
        c->z0 = c->z1 = 0.0;
        CALLBACK = nc_unit_free;
    }
    c = (nc_unit_cache_t *) STATIC_VAR(cache);
    nt = PARAM(nt);

    if (ANALYSIS != MIF_TRAN) {
        /* operating point and AC: noiseless (the value at t = 0 is 0 too) */
        if (ANALYSIS != MIF_AC)
            OUTPUT(out) = 0.0;
        return;
    }
    t = TIME;
    x = t / nt;
    k = (long long) floor(x);
    if (k < 0)
        k = 0;
    th = x - (double) k;
    if (c->k != k) {
        if (c->k == k - 1) {
            c->z0 = c->z1;  /* the next interval: its first sample is the last one's second */
        } else {
            c->z0 = nc_gauss(c->key, k);
        }
        c->z1 = nc_gauss(c->key, k + 1);
        c->k = k;
    }
    OUTPUT(out) = sqrt(0.5 / nt) * ((1.0 - th) * c->z0 + th * c->z1);
    if (PARAM(bkpt) > 0) {
        /* the next time k*h (h = nt/bkpt) strictly after t; a time within 1e-6 h of one is that one */
        h = nt / PARAM(bkpt);
        kn = (long long) floor(t / h + 1e-6) + 1;
        cm_analog_set_temp_bkpt((double) kn * h);
    } else if (PARAM(bkpt) < 0 && fabs(x - floor(x + 0.5)) > 1e-6) {
        /* align: back onto the grid only from off it. ngspice integrates the step after every
           breakpoint at order 1 (backward Euler); from a grid point the step cap TMAX = nt reaches
           the next one without a breakpoint, so steps stay trapezoidal (or gear 2) */
        cm_analog_set_temp_bkpt((floor(x + 1e-6) + 1.0) * nt);
    }
}
