"""The sweep output folder: atomic per-job results, compressed bits/waveforms, a manifest of the spec.

Layout of ``DIR``::

    manifest.json              the validated spec, its sha256 and every job (id + conditions)
    results/<job_id>.parquet   one summary row per finished job (ok or failed) — the commit marker
    bits/<job_id>.npz          the digitised bit stream (packed, compressed)
    waves/<job_id>.npz         the analog waveform (Waveform.save_npz), unless keep_waveforms = false
    chunks/<job_id>/<k>.parquet  adaptive sweeps: one row per finished chunk (bits/waves ``<job_id>.c<k>.npz``)
    summary.parquet            consolidated table written at the end of a run (a convenience copy;
                               :func:`load` always rebuilds from ``results/``)
    logs/                      simulator host logs

Every file is written to a hidden temporary name in the same folder, flushed to disk and renamed
over its final name (``os.replace`` is atomic on POSIX), so a ``kill -9`` at any moment leaves
either the complete file or none; temporary leftovers start with ``.`` and are never read. A
job's result row is written last, after its bits and waveform, so a row always has its data.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError

MANIFEST = "manifest.json"
STORE_FORMAT = "noisecell-sweep-1"
#: columns that record when/where a row was produced; they legitimately differ between two runs
#: of the same job and are excluded when results are compared for equality
PROVENANCE_COLUMNS = ("wall_s", "finished_utc", "invocation", "host")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a hidden temp file in the same folder, fsync, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _row_bytes(row: Mapping[str, Any]) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([dict(row)]), buf, compression="zstd")
    return buf.getvalue()


def _read_row(path: Path) -> dict:
    rows = pq.read_table(path).to_pylist()
    if len(rows) != 1:
        raise InputError(f"{path}: expected one result row, found {len(rows)}; delete the file to rerun the job")
    return rows[0]


class Store:
    """One sweep output folder. All writes are atomic; reads ignore temporary files."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.results = self.root / "results"
        self.bits = self.root / "bits"
        self.waves = self.root / "waves"
        self.chunks = self.root / "chunks"
        self.logs = self.root / "logs"

    # -- manifest ---------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    def read_manifest(self) -> dict:
        p = self.manifest_path
        try:
            m = json.loads(p.read_text())
        except FileNotFoundError:
            raise InputError(f"{self.root}: not a sweep output folder (no {MANIFEST}); "
                             "run `noisecell sweep SPEC.toml --out DIR` first") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{p}: unreadable manifest ({exc}); rerun the sweep into a new --out folder") from None
        if m.get("format") != STORE_FORMAT:
            raise InputError(f"{p}: format {m.get('format')!r} is not {STORE_FORMAT!r}; "
                             "this folder was written by another noisecell version")
        return m

    def write_manifest(self, manifest: Mapping[str, Any]) -> None:
        data = dict(manifest)
        data["format"] = STORE_FORMAT
        atomic_write_bytes(self.manifest_path, json.dumps(data, indent=1, sort_keys=True).encode())

    def prepare(self, manifest: Mapping[str, Any], *, replace: bool = False) -> None:
        """Create the folder for ``manifest``; refuse a folder holding a different sweep.

        ``replace``: adopt the new spec (old results stay; content-addressed ids mean a point whose
        conditions did not change is still recognised as done).
        """
        if self.manifest_path.exists():
            old = self.read_manifest()
            if old.get("spec_sha256") != manifest.get("spec_sha256") and not replace:
                raise InputError(
                    f"{self.root}: holds a sweep of a different spec (manifest {old.get('spec_source')}); "
                    "use a new --out folder, or --update-spec to extend this one")
            same_jobs = [j["job_id"] for j in old.get("jobs", [])] == [j["job_id"] for j in manifest["jobs"]]
            if same_jobs and old.get("spec_sha256") == manifest.get("spec_sha256"):
                self._clean_temporaries()
                return
        self.root.mkdir(parents=True, exist_ok=True)
        for d in (self.results, self.bits, self.waves, self.logs):
            d.mkdir(exist_ok=True)
        self._clean_temporaries()
        self.write_manifest(manifest)

    def _clean_temporaries(self) -> None:
        # leftovers of writes interrupted by kill -9: never complete, never read; remove them
        for d in (self.root, self.results, self.bits, self.waves, self.chunks):
            if d.is_dir():
                for p in d.rglob(".*.tmp*"):
                    p.unlink(missing_ok=True)

    # -- per-job results --------------------------------------------------------------------
    def result_path(self, job_id: str) -> Path:
        return self.results / f"{job_id}.parquet"

    def has_result(self, job_id: str) -> bool:
        return self.result_path(job_id).exists()

    def read_result(self, job_id: str) -> dict | None:
        p = self.result_path(job_id)
        return _read_row(p) if p.exists() else None

    def finished(self) -> dict[str, str]:
        """job_id -> status for every stored result row."""
        out = {}
        if self.results.is_dir():
            for p in self.results.glob("*.parquet"):
                if not p.name.startswith("."):
                    out[p.stem] = pq.read_table(p, columns=["status"]).column("status")[0].as_py()
        return out

    def write_bits(self, name: str, bits: np.ndarray, sample_period_s: float | None) -> Path:
        b = np.asarray(bits, dtype=np.uint8)
        buf = io.BytesIO()
        np.savez_compressed(buf, packed=np.packbits(b), n=np.int64(len(b)),
                            sample_period_s=np.float64(np.nan if sample_period_s is None else sample_period_s))
        p = self.bits / f"{name}.npz"
        atomic_write_bytes(p, buf.getvalue())
        return p

    def read_bits(self, name: str) -> tuple[np.ndarray, float | None]:
        """The stored bit stream (uint8 0/1) and its sample period, s."""
        p = self.bits / f"{name}.npz"
        with np.load(p, allow_pickle=False) as z:
            n = int(z["n"])
            bits = np.unpackbits(z["packed"])[:n]
            sp = float(z["sample_period_s"])
        return bits, (None if np.isnan(sp) else sp)

    def write_waveform(self, name: str, waveform) -> Path:
        return waveform.save_npz(self.waves / f"{name}.npz")

    def write_result(self, job_id: str, row: Mapping[str, Any]) -> None:
        atomic_write_bytes(self.result_path(job_id), _row_bytes(row))

    # -- adaptive chunks --------------------------------------------------------------------
    def chunk_path(self, job_id: str, k: int) -> Path:
        return self.chunks / job_id / f"{k}.parquet"

    def write_chunk(self, job_id: str, k: int, row: Mapping[str, Any]) -> None:
        atomic_write_bytes(self.chunk_path(job_id, k), _row_bytes(row))

    def read_chunks(self, job_id: str) -> list[dict]:
        """Stored chunk rows 0, 1, ... up to the first missing one (later ones are recomputed)."""
        rows = []
        k = 0
        while (p := self.chunk_path(job_id, k)).exists():
            rows.append(_read_row(p))
            k += 1
        return rows

    # -- consolidated view ------------------------------------------------------------------
    def load(self) -> pd.DataFrame:
        """One row per job of the manifest: stored result, or conditions with status "pending"."""
        m = self.read_manifest()
        rows = []
        for job in m["jobs"]:
            r = self.read_result(job["job_id"])
            if r is None:
                r = {**job, "status": "pending", "error": None, "attempts": 0}
            rows.append(r)
        df = pd.DataFrame.from_records(rows)
        if len(df):
            df = df.sort_values("index", kind="stable").reset_index(drop=True)
        return df

    def write_summary(self, df: pd.DataFrame) -> None:
        buf = io.BytesIO()
        try:
            df.to_parquet(buf, index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            # a column whose type differs between rows (e.g. a number in one, text in another):
            # store such columns as text in this convenience copy; results/ keeps the real values
            df = df.copy()
            for c in df.columns[df.dtypes == object]:
                df[c] = df[c].map(lambda v: None if v is None else str(v))
            buf = io.BytesIO()
            df.to_parquet(buf, index=False)
        atomic_write_bytes(self.root / "summary.parquet", buf.getvalue())

    def counts(self) -> dict[str, int]:
        """{"total", "done", "failed", "pending"} for the manifest's jobs."""
        m = self.read_manifest()
        fin = self.finished()
        ids = [j["job_id"] for j in m["jobs"]]
        done = sum(1 for i in ids if fin.get(i) == "ok")
        failed = sum(1 for i in ids if i in fin and fin[i] != "ok")
        return {"total": len(ids), "done": done, "failed": failed, "pending": len(ids) - done - failed}


def iter_result_files(root: str | os.PathLike) -> Iterable[Path]:
    return sorted(p for p in (Path(root) / "results").glob("*.parquet") if not p.name.startswith("."))
