"""Device ratings of a PDK (the voltages its SPICE models are valid for) and the worst-case check of one
device's terminal voltages against them. Pure: used by the cell check (noisecell.cellcheck) and by the
trims (noisecell.trim: an instance's trimmed point must stay within ratings)."""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class DeviceRating:
    """Voltages a PDK device family is rated (and its SPICE models valid) for, V (magnitudes).

    vds_max: |V_DS|; vgs_max: |V_GS| (also applied to |V_GD| and |V_GB|: the same oxide);
    vbs_reverse_max: reverse body bias |V_BS| (applied to |V_DB| and |V_SB| reversed);
    vbs_forward_max: forward body bias the models are valid for (source/drain–body junction).
    """

    family: str
    vds_max: float
    vgs_max: float
    vbs_reverse_max: float
    vbs_forward_max: float


#: sky130 "Operating Voltages where SPICE models are valid", from the SkyWater PDK documentation
#: (docs/rules/device-details/<device>/index.rst of google/skywater-pdk): nfet_01v8(_lvt/_hvt):
#: V_DS, V_GS 0–1.95 V, V_BS +0.3 to -1.95 V; pfet_01v8(_lvt/_hvt): 0 to -1.95 V, V_BS -0.1 to
#: +1.95 V; nfet_03v3_nvt: 0–3.3 V, V_BS 0 to -3.3 V; nfet_05v0_nvt: 0–5.5 V, V_BS +0.3 to -5.5 V;
#: nfet/pfet_g5v0d10v5: V_DS 11 V, V_GS 5.5 V, V_BS 0 to ∓5.5 V; pfet_g5v0d16v0: V_DS 10 V
#: (16 V at V_GS = 0), V_GS 5.5 V, V_BS 0 to +2 V; nfet_g5v0d16v0 taken the same.
SKY130_RATINGS: tuple[tuple[re.Pattern, DeviceRating], ...] = (
    (re.compile(r"^sky130_fd_pr__nfet_01v8(_lvt|_hvt)?$"), DeviceRating("1.8 V nfet", 1.95, 1.95, 1.95, 0.3)),
    (re.compile(r"^sky130_fd_pr__pfet_01v8(_lvt|_hvt)?$"), DeviceRating("1.8 V pfet", 1.95, 1.95, 1.95, 0.1)),
    (re.compile(r"^sky130_fd_pr__nfet_03v3_nvt$"), DeviceRating("3.3 V native nfet", 3.3, 3.3, 3.3, 0.0)),
    (re.compile(r"^sky130_fd_pr__nfet_05v0_nvt$"), DeviceRating("5 V native nfet", 5.5, 5.5, 5.5, 0.3)),
    (re.compile(r"^sky130_fd_pr__[np]fet_g5v0d10v5$"), DeviceRating("5 V/10.5 V thick-oxide fet", 11.0, 5.5, 5.5, 0.0)),
    (re.compile(r"^sky130_fd_pr__[np]fet_g5v0d16v0$"), DeviceRating("10 V/16 V extended-drain fet", 10.0, 5.5, 2.0, 0.0)),
)


def rating_for(technology: str, model: str) -> DeviceRating | None:
    """The rating of a device model (None: unknown family or a technology without a table)."""
    if technology != "sky130":
        return None
    for pat, r in SKY130_RATINGS:
        if pat.match(model.lower()):
            return r
    return None


@dataclass(frozen=True)
class DeviceVoltages:
    """A device's worst terminal voltages over the checked operating points, V, against its rating."""

    name: str
    model: str
    family: str
    vgs_v: float
    vds_v: float
    vgd_v: float
    vgb_v: float
    vdb_v: float
    vsb_v: float
    forward_v: float  # largest source/drain–body forward bias (n: V_B - V_S|D; p: V_S|D - V_B)
    limits: dict
    violations: tuple[str, ...]
    where: str  # the condition of the largest forward bias


def check_device(name: str, model: str, polarity: str, rating: DeviceRating | None,
                 samples: list[tuple[str, dict[str, float]]]) -> DeviceVoltages:
    """Worst-case terminal voltages of one device over ``samples`` [(condition, {d, g, s, b: V})]."""
    worst = {k: (0.0, "") for k in ("vgs", "vds", "vgd", "vgb", "vdb", "vsb", "fwd")}

    def keep(k, v, where):
        if abs(v) > abs(worst[k][0]) or (k == "fwd" and v > worst[k][0]):
            worst[k] = (v, where)

    for where, t in samples:
        d, g, s, b = t["d"], t["g"], t["s"], t["b"]
        keep("vgs", g - s, where)
        keep("vds", d - s, where)
        keep("vgd", g - d, where)
        keep("vgb", g - b, where)
        keep("vdb", d - b, where)
        keep("vsb", s - b, where)
        fwd = max(b - s, b - d) if polarity == "n" else max(s - b, d - b)
        if fwd > worst["fwd"][0] or not worst["fwd"][1]:
            worst["fwd"] = (fwd, where)
    viol = []
    limits = {}
    if rating is not None:
        limits = asdict(rating)
        checks = (("V_GS", "vgs", rating.vgs_max), ("V_GD", "vgd", rating.vgs_max), ("V_GB", "vgb", rating.vgs_max),
                  ("V_DS", "vds", rating.vds_max), ("V_DB", "vdb", rating.vbs_reverse_max + rating.vds_max),
                  ("V_SB", "vsb", rating.vbs_reverse_max))
        for label, k, lim in checks:
            v, where = worst[k]
            if abs(v) > lim + 1e-9:
                viol.append(f"|{label}| {abs(v):.3g} V > {lim:g} V ({where})")
    return DeviceVoltages(name, model, rating.family if rating else "unrated", *(worst[k][0] for k in
                          ("vgs", "vds", "vgd", "vgb", "vdb", "vsb", "fwd")), limits, tuple(viol),
                          worst["fwd"][1])
