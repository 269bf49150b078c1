/* noisecell channel-noise current: see ifspec.ifs and noisecell/noise.py.

   S(i, v) = 2q|i v|/(v^2+eps^2) * w / tanh(w/(2 V_T)) + floor,  w = sqrt(v^2+eps^2)
           = 2q|i||v| / g(w) + floor,  g(w) = w tanh(w/(2 V_T))
   out     = sqrt(S) * U,  U = sum of the unit-noise inputs
   d out/d u_k = sqrt(S)
   d out/d i   = U/(2 sqrt S) * 2q sgn(i) |v| / g
   d out/d v   = U/(2 sqrt S) * 2q |i| (sgn(v)/g - |v| g'(w) (v/w) / g^2),
                 g'(w) = tanh(x) + x (1 - tanh(x)^2),  x = w/(2 V_T)
   The value is computed in the same operation order as the portable .func so the two routes
   agree to rounding. */

#include <math.h>

static double nc_sign(double x)
{
    return (x > 0.0) ? 1.0 : ((x < 0.0) ? -1.0 : 0.0);
}

void cm_nc_chan(ARGS)
{
    int k, n;
    double i, v, uu, q, vt, eps, floor_psd, w2, w, x, th, g, s, r, c, gp, di, dv;
    Mif_Complex_t ac;

    i = INPUT(ids);
    v = INPUT(vds);
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
        PARTIAL(out, ids) = di;
        PARTIAL(out, vds) = dv;
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
