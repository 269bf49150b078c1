/* noisecell channel-noise current: see ifspec.ifs and noisecell/noise.py.

   S(i, v) = 2q|i v|/(v^2+eps^2) * w / tanh(w/(2 V_T)) + floor,  w = sqrt(v^2+eps^2)
           = 2q|i||v| / g(w) + floor,  g(w) = w tanh(w/(2 V_T))
   out     = sqrt(S) * U,  U = sum of the unit-noise inputs
   d out/d u_k = sqrt(S)
   d out/d i   = U/(2 sqrt S) * 2q sgn(i) |v| / g
   d out/d v   = U/(2 sqrt S) * 2q |i| (sgn(v)/g - |v| g'(w) (v/w) / g^2),
                 g'(w) = tanh(x) + x (1 - tanh(x)^2),  x = w/(2 V_T)
   The value is computed in the same operation order as the portable .func so the two routes
   agree to rounding.

   lagband > 0 (the smooth route): while |V_DS| at the last ACCEPTED time point is below lagband,
   S is evaluated at that point's (i, v) and held through the step, so d out/d i = d out/d v = 0.
   Why: evaluated at the unknown new point, sqrt(S) ~ sqrt(4kTg)|v|/sqrt(v^2+eps^2) of a device
   parked at V_DS = 0 has slope ~sqrt(4kTg)/eps there, which times the unit noise is a random-sign
   conductance (~0.1 mS at eps 10 uV, NT 0.4 ns, pbit_x5 at -40 C) on a 0.1 fF node: ps time
   constants; the solver cut its step to 1e-15..1e-13 s for tens of ns (design/NOTES.md section 15).
   Only inside the band: outside it the amplitude stays implicit (at the new point), the form whose
   noise-induced drift keeps a device in equilibrium with a capacitor at its Boltzmann mean; a held
   amplitude everywhere (Ito form) moved pbit_x5's P(1) at 0 V by +0.05 (10 of 10 paired seeds). */

#include <math.h>

static double nc_sign(double x)
{
    return (x > 0.0) ? 1.0 : ((x < 0.0) ? -1.0 : 0.0);
}

void cm_nc_chan(ARGS)
{
    int k, n;
    double i, v, uu, q, vt, eps, floor_psd, w2, w, x, th, g, s, r, c, gp, di, dv;
    double *now, *before, band;
    int lagged = 0;
    Mif_Complex_t ac;

    i = INPUT(ids);
    v = INPUT(vds);
    band = PARAM_NULL(lagband) ? 0.0 : PARAM(lagband);
    if (band > 0.0) {
        /* state slot 0 = this point's (i, v); slot 1 = the last accepted point's (after the operating
           point, ngspice copies slot 0 into slot 1, so the first step uses the operating point) */
        if (INIT)
            cm_analog_alloc(0, 2 * (int) sizeof(double));
        now = (double *) cm_analog_get_ptr(0, 0);
        now[0] = i;
        now[1] = v;
        if (ANALYSIS == MIF_TRAN && !INIT) {
            before = (double *) cm_analog_get_ptr(0, 1);
            if (fabs(before[1]) < band) {
                lagged = 1;
                i = before[0];
                v = before[1];
            }
        }
    }
    n = PORT_SIZE(u);
    uu = 0.0;
    for (k = 0; k < n; k++)
        uu += INPUT(u[k]);
    q = PARAM(q);
    vt = PARAM(vt);
    eps = PARAM(eps);
    floor_psd = PARAM(floor);

    w2 = v * v + eps * eps;
    w = sqrt(w2);
    x = w / (2 * vt);
    th = tanh(x);
    s = 2 * q * fabs(i * v) / w2 * w / th + floor_psd;
    r = sqrt(s);
    g = w * th;
    c = uu / (2 * r);
    gp = th + x * (1 - th * th);
    di = c * 2 * q * nc_sign(i) * fabs(v) / g;
    dv = c * 2 * q * fabs(i) * (nc_sign(v) / g - fabs(v) * gp * (v / w) / (g * g));

    if (ANALYSIS != MIF_AC) {
        OUTPUT(out) = r * uu;
        for (k = 0; k < n; k++)
            PARTIAL(out, u[k]) = r;
        PARTIAL(out, ids) = lagged ? 0.0 : di;
        PARTIAL(out, vds) = lagged ? 0.0 : dv;
    } else {
        ac.imag = 0.0;
        for (k = 0; k < n; k++) {
            ac.real = r;
            AC_GAIN(out, u[k]) = ac;
        }
        ac.real = di;
        AC_GAIN(out, ids) = ac;
        ac.real = dv;
        AC_GAIN(out, vds) = ac;
    }
}
