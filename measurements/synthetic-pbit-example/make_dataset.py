"""Make the SYNTHETIC example measurement folder shipped in measurements/synthetic-pbit-example/.

Nothing here was measured. The "captures" are exact samples of a two-state continuous-time Markov
chain (a random telegraph) whose switching rates are log-linear in bias, the Kramers-like form the
noisecell model assumes:

    ln k_up(V)   = ln k0 + a·(V − V50)        a = (1 − ASYM)/SCALE_V
    ln k_down(V) = ln k0 − b·(V − V50)        b = ASYM/SCALE_V

so P(1) = k_up/(k_up + k_down) is the logistic 1/(1 + exp(−(V − V50)/SCALE_V)) and
τ = 1/(k_up + k_down). The truth is written to truth.json so that tests can check that the loader
plus the analysis recover it. The parameters are set near the simulated sky130 `pbit` at tt/27 °C
with a deliberate offset, slope and τ change, to exercise the simulation-versus-measurement section.

One capture is a synthetic scope trace: the telegraph mapped to 0 / VDD, low-pass filtered (first
order, RISE_TAU_S) and with Gaussian noise added, sampled every TRACE_STEP_S; the loader digitises it.
Run:  .venv/bin/python measurements/synthetic-pbit-example/make_dataset.py   (deterministic: SEED)
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
from scipy import signal

HERE = Path(__file__).resolve().parent
SEED = 20261125
V50_V = 0.004            # sigmoid midpoint, V
SCALE_V = 0.007          # logistic scale, V
ASYM = 0.4               # share of the bias dependence carried by k_down
TAU0_S = 60e-9           # correlation time at V50, s
SAMPLE_PERIOD_S = 5e-9   # bit clock, s
N_SAMPLES = 200_000      # per bit capture (1 ms of clocked bits)
VDD_V = 0.094            # the sky130 pbit nominal supply (spice_models/pbit/cell.toml), V
TEMP_C = 27.0
I0_A = 2.5e-9            # mean supply current at V50, A (invented; mild bias dependence below)
BIAS_V = [-0.024, -0.016, -0.010, -0.005, 0.0, 0.004, 0.008, 0.012, 0.016, 0.020, 0.028]
TRACE_BIAS_V = 0.0
TRACE_STEP_S = 0.5e-9
TRACE_DURATION_S = 10e-6
RISE_TAU_S = 1.5e-9
TRACE_NOISE_V = 0.0015


def rates(v: float) -> tuple[float, float]:
    """(k_up, k_down) in 1/s at bias v (V)."""
    k0 = 1.0 / (2.0 * TAU0_S)
    a, b = (1 - ASYM) / SCALE_V, ASYM / SCALE_V
    return k0 * math.exp(a * (v - V50_V)), k0 * math.exp(-b * (v - V50_V))


def telegraph_times(k_up: float, k_down: float, duration_s: float, rng) -> tuple[np.ndarray, int]:
    """Switching instants (s) of a stationary telegraph on [0, duration_s] and its initial state."""
    s0 = int(rng.random() < k_up / (k_up + k_down))
    mean_dwell = 0.5 * (1 / k_up + 1 / k_down)
    n = int(duration_s / mean_dwell * 1.3) + 100
    while True:
        # alternate dwell means: state s leaves at k_up (s = 0) or k_down (s = 1); the memoryless
        # first dwell makes starting at t = 0 exact for a stationary chain
        means = np.where((np.arange(n) + s0) % 2 == 0, 1 / k_up, 1 / k_down)
        t = np.cumsum(rng.exponential(means))
        if t[-1] > duration_s:
            return t[t <= duration_s], s0
        n *= 2


def state_at(times: np.ndarray, switches: np.ndarray, s0: int) -> np.ndarray:
    n_before = np.searchsorted(switches, times, side="right")
    return ((s0 + n_before) % 2).astype(np.uint8)


def main() -> None:
    rng = np.random.default_rng(SEED)
    cap_dir = HERE / "captures"
    cap_dir.mkdir(exist_ok=True)
    entries, truth = [], []
    for i, v in enumerate(BIAS_V):
        k_up, k_down = rates(v)
        duration = N_SAMPLES * SAMPLE_PERIOD_S
        sw, s0 = telegraph_times(k_up, k_down, duration, rng)
        bits = state_at(np.arange(N_SAMPLES) * SAMPLE_PERIOD_S, sw, s0)
        name = f"bias_{v * 1e3:+.0f}mV".replace("+", "p").replace("-", "m")
        # several on-disk formats on purpose, so the example exercises the loaders
        if i == 0:
            fname, fmt = f"captures/{name}.npy", "npy"
            np.save(HERE / fname, bits)
        elif i == 1:
            fname, fmt = f"captures/{name}.bin", "bytes"   # one sample per byte (SP 800-90B)
            (HERE / fname).write_bytes(bits.tobytes())
        else:
            fname, fmt = f"captures/{name}.packed", "packed"
            (HERE / fname).write_bytes(np.packbits(bits, bitorder="big").tobytes())
        current = I0_A * (1 + 2.0 * v)  # invented: +5.6 % at +28 mV
        entries.append(dict(file=fname, kind="bits", format=fmt, bias_v=f"{v * 1e3:g}mV",
                            n_samples=N_SAMPLES, supply_current_a=f"{current * 1e9:.4g}nA"))
        truth.append(dict(bias_v=v, k_up_hz=k_up, k_down_hz=k_down, p1=k_up / (k_up + k_down),
                          tau_s=1 / (k_up + k_down), supply_current_a=float(f"{current * 1e9:.4g}") * 1e-9))
    # the scope trace
    k_up, k_down = rates(TRACE_BIAS_V)
    n = int(TRACE_DURATION_S / TRACE_STEP_S)
    t = np.arange(n) * TRACE_STEP_S
    sw, s0 = telegraph_times(k_up, k_down, TRACE_DURATION_S, rng)
    ideal = state_at(t, sw, s0) * VDD_V
    alpha = 1 - math.exp(-TRACE_STEP_S / RISE_TAU_S)
    v = signal.lfilter([alpha], [1, alpha - 1], ideal, zi=[ideal[0] * (1 - alpha)])[0]
    v = v + rng.normal(0, TRACE_NOISE_V, n)
    fname = "captures/scope_bias_0mV.csv"
    with open(HERE / fname, "w") as fh:
        fh.write("time_s,voltage_v\n")
        for ti, vi in zip(t, v):
            fh.write(f"{ti:.4e},{vi:.4f}\n")
    entries.append(dict(file=fname, kind="trace", format="csv", bias_v="0mV", n_samples=n,
                        threshold_v=f"{VDD_V / 2 * 1e3:g}mV", supply_current_a=f"{I0_A * 1e9:.4g}nA",
                        notes="synthetic scope trace: telegraph, 1st-order rise, Gaussian noise"))

    prov = ("SYNTHETIC, not measured: exact samples of a two-state continuous-time Markov chain with "
            f"log-linear rates (logistic V50 = {V50_V * 1e3:g} mV, scale = {SCALE_V * 1e3:g} mV, "
            f"tau(V50) = {TAU0_S * 1e9:g} ns, k_down share {ASYM}), made by make_dataset.py with seed {SEED}; "
            "the scope trace adds a first-order rise and Gaussian noise; supply currents are invented. "
            "Truth in truth.json.")
    lines = [
        "# Generated by make_dataset.py: do not edit by hand (re-run the script instead).",
        'format = "noisecell-measurements-1"',
        'cell_id = "synthetic-telegraph-1"',
        'cell = "pbit"',
        'instrument = "none (synthetic data; the trace imitates an oscilloscope on a buffered output)"',
        "synthetic = true",
        f"provenance = {json.dumps(prov)}",
        'notes = "Example of the measurement-folder format; use it to try --measurements."',
        "",
        "[defaults]",
        f"temp_c = {TEMP_C:g}",
        f'vdd_v = "{VDD_V * 1e3:g}mV"',
        f'sample_period_s = "{SAMPLE_PERIOD_S * 1e9:g}ns"',
    ]
    for e in entries:
        lines += ["", "[[capture]]"]
        for k, val in e.items():
            lines.append(f"{k} = {json.dumps(val)}")
    (HERE / "measurements.toml").write_text("\n".join(lines) + "\n")
    (HERE / "truth.json").write_text(json.dumps({
        "seed": SEED, "v50_v": V50_V, "logistic_scale_v": SCALE_V, "tau_at_v50_s": TAU0_S, "asym": ASYM,
        "sample_period_s": SAMPLE_PERIOD_S, "temp_c": TEMP_C, "vdd_v": VDD_V, "points": truth,
        "trace": {"bias_v": TRACE_BIAS_V, "step_s": TRACE_STEP_S, "duration_s": TRACE_DURATION_S,
                  "rise_tau_s": RISE_TAU_S, "noise_v": TRACE_NOISE_V}}, indent=1) + "\n")


if __name__ == "__main__":
    main()
