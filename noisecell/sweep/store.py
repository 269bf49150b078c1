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

    checksums.jsonl            one line per stored file: {"file", "size", "sha256"} (the last line of a
                               file wins); every file read is checked against it
    quarantine/                damaged files moved out of the way (their jobs count as pending)
    writer.lock                flock'ed by the one process writing the folder

Every file is written to a hidden temporary name in the same folder, flushed to disk and renamed
over its final name (``os.replace`` is atomic on POSIX), so a ``kill -9`` at any moment leaves
either the complete file or none; temporary leftovers start with ``.`` and are never read. A
job's result row is written last, after its bits and waveform, so a row always has its data.

Integrity: the size and sha256 of each file are appended to ``checksums.jsonl`` (fsync'ed) before
the file is renamed into place; an append-only journal rather than the manifest because rewriting
a manifest of thousands of jobs after every result would cost O(jobs²) writes. A file whose size or
checksum differs from its record, or that does not parse (random bytes, truncated, empty, zero
rows, a row of another job), is moved to ``quarantine/`` with a one-line warning on stderr; its job
then counts as pending, so ``status`` reports it, ``fit`` leaves it out and a resumed sweep reruns
it. A file with no record (written by an older noisecell, or a waveform whose record a kill -9
prevented) is accepted when it parses.

One writer: :meth:`Store.acquire_writer_lock` takes an exclusive ``flock`` on ``writer.lock``; a
second sweep into the same folder is refused with a message naming the holder's pid. The kernel
drops the lock when its process dies, so a killed sweep never leaves a stale lock behind.
"""
from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import atomic_write
from ..errors import InputError

MANIFEST = "manifest.json"
STORE_FORMAT = "noisecell-sweep-1"
#: columns that record when/where a row was produced; they legitimately differ between two runs
#: of the same job and are excluded when results are compared for equality
PROVENANCE_COLUMNS = ("wall_s", "cpu_s", "finished_utc", "invocation", "host", "reanalysed_from")


JOURNAL = "checksums.jsonl"
LOCK_FILE = "writer.lock"
QUARANTINE = "quarantine"


def atomic_write_bytes(path: Path, data: bytes, before_rename=None) -> None:
    """Write ``data`` to ``path`` via a hidden temp file in the same folder, fsync, then rename.

    before_rename: called (no arguments) after the data is on disk and before it gets its name.
    """
    atomic_write(path, data, before_rename=before_rename)


class CorruptFileError(InputError):
    """A stored file failed its checksum or did not parse; it has been quarantined."""


class WriterLock:
    """An exclusive flock on ``DIR/writer.lock``, held until :meth:`release` or process exit."""

    def __init__(self, fd: int, path: Path):
        self._fd, self.path = fd, path

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def _row_bytes(row: Mapping[str, Any]) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([dict(row)]), buf, compression="zstd")
    return buf.getvalue()


def _parse_row(data: bytes) -> dict:
    """The single row of a result/chunk parquet; ValueError when it is not one."""
    try:
        rows = pq.read_table(pa.BufferReader(data)).to_pylist()
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"not a readable parquet file ({exc.__class__.__name__})") from None
    if len(rows) != 1:
        raise ValueError(f"expected one row, found {len(rows)}")
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
        self.quarantine_dir = self.root / QUARANTINE
        #: one message per file this Store moved to quarantine (in this process)
        self.quarantined: list[str] = []
        self._journal_cache: tuple[tuple[int, int], dict[str, dict]] | None = None

    # -- writer lock ------------------------------------------------------------------------
    def acquire_writer_lock(self) -> WriterLock:
        """Become the one process writing this folder (created if missing); InputError if another is.

        flock, not a pid file: the kernel releases it when the holder dies (even by SIGKILL), so a
        crashed sweep cannot leave the store locked.
        """
        from ..errors import InputError as _IE

        try:
            self.root.mkdir(parents=True, exist_ok=True)
            path = self.root / LOCK_FILE
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise _IE(f"{self.root}: cannot create the sweep folder's lock file ({exc.strerror}); "
                      "choose a writable --out folder") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
            finally:
                os.close(fd)
            raise _IE(f"{self.root}: another noisecell process ({holder}) is writing this sweep folder; "
                      "wait for it to finish or use another --out folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since "
                      f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
        return WriterLock(fd, path)

    # -- integrity --------------------------------------------------------------------------
    def _journal(self) -> dict[str, dict]:
        """file (relative to root) -> its last {"size", "sha256"} record; unreadable lines skipped."""
        p = self.root / JOURNAL
        try:
            st = p.stat()
        except OSError:
            return {}
        key = (st.st_size, st.st_mtime_ns)
        if self._journal_cache and self._journal_cache[0] == key:
            return self._journal_cache[1]
        out: dict[str, dict] = {}
        try:
            data = p.read_bytes()
        except OSError:
            return {}
        for line in data.splitlines():
            try:
                rec = json.loads(line)
            except (ValueError, UnicodeDecodeError):
                continue  # a line torn by a kill -9, or garbage: never trusted, never fatal
            if (isinstance(rec, dict) and isinstance(rec.get("file"), str) and isinstance(rec.get("size"), int)
                    and isinstance(rec.get("sha256"), str)):
                out[rec["file"]] = rec
        self._journal_cache = (key, out)
        return out

    def _record(self, path: Path, data: bytes) -> None:
        rec = {"file": path.relative_to(self.root).as_posix(), "size": len(data),
               "sha256": hashlib.sha256(data).hexdigest()}
        fd = os.open(self.root / JOURNAL, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (json.dumps(rec, sort_keys=True) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def _write(self, path: Path, data: bytes) -> None:
        atomic_write_bytes(path, data, before_rename=lambda: self._record(path, data))

    def _quarantine(self, path: Path, why: str) -> str:
        rel = path.relative_to(self.root)
        dst = self.quarantine_dir / rel.parent / f"{rel.name}.{time.strftime('%Y%m%dT%H%M%S')}.{os.getpid()}"
        try:
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, dst)
            where = f"moved to {dst}"
        except OSError as exc:
            where = f"could not be moved to quarantine ({exc.strerror})"
        msg = (f"{path}: damaged ({why}); {where}, its job counts as pending and a resumed sweep reruns it")
        self.quarantined.append(msg)
        print(f"noisecell: warning: {msg}", file=sys.stderr)
        return msg

    def _verified_bytes(self, path: Path) -> bytes | None:
        """The bytes of ``path`` if they match its journal record (or it has none); None if missing.

        Raises ValueError (with the reason) when the file disagrees with its record.
        """
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        rec = self._journal().get(path.relative_to(self.root).as_posix())
        if rec is not None:
            if len(data) != rec["size"]:
                raise ValueError(f"{len(data)} bytes, the journal recorded {rec['size']}")
            if hashlib.sha256(data).hexdigest() != rec["sha256"]:
                raise ValueError("sha256 differs from the journal's record")
        return data

    def _read_row_checked(self, path: Path, job_id: str | None = None, *, result: bool = True) -> dict | None:
        """The verified single row stored at ``path``; None when missing or quarantined just now."""
        try:
            data = self._verified_bytes(path)
            if data is None:
                return None
            row = _parse_row(data)
            if job_id is not None and row.get("job_id") not in (None, job_id):
                raise ValueError(f"it holds the row of job {str(row.get('job_id'))[:12]}")
            if result and "status" not in row:
                raise ValueError("no status column")
        except ValueError as exc:
            self._quarantine(path, str(exc))
            return None
        except OSError as exc:
            raise InputError(f"{path}: cannot read ({exc.strerror}); check the folder's permissions") from None
        return row

    def quarantined_files(self) -> list[Path]:
        """Every file in ``quarantine/`` (from any run)."""
        q = self.quarantine_dir
        return sorted(p for p in q.rglob("*") if p.is_file()) if q.is_dir() else []

    # -- manifest ---------------------------------------------------------------------------
    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    def read_manifest(self) -> dict:
        p = self.manifest_path
        try:
            m = json.loads(p.read_bytes())
        except FileNotFoundError:
            raise InputError(f"{self.root}: not a sweep output folder (no {MANIFEST}); "
                             "run `noisecell sweep SPEC.toml --out DIR` first") from None
        except NotADirectoryError:
            raise InputError(f"{self.root}: is a file, not a sweep output folder; pass the sweep's --out folder") from None
        except OSError as exc:
            raise InputError(f"{p}: cannot read ({exc.strerror}); check the path and its permissions") from None
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise InputError(f"{p}: unreadable manifest ({exc.__class__.__name__}); rerun the sweep into a new "
                             "--out folder") from None
        if not isinstance(m, dict):
            raise InputError(f"{p}: the manifest is not a JSON object; rerun the sweep into a new --out folder")
        if m.get("format") != STORE_FORMAT:
            raise InputError(f"{p}: format {m.get('format')!r} is not {STORE_FORMAT!r}; "
                             "this folder was written by another noisecell version")
        jobs = m.get("jobs")
        if (not isinstance(jobs, list)
                or not all(isinstance(j, dict) and isinstance(j.get("job_id"), str) for j in jobs)):
            raise InputError(f"{p}: the manifest has no valid job list; rerun the sweep into a new --out folder")
        return m

    def write_manifest(self, manifest: Mapping[str, Any]) -> None:
        data = dict(manifest)
        data["format"] = STORE_FORMAT
        self._write(self.manifest_path, json.dumps(data, indent=1, sort_keys=True, allow_nan=False).encode())

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
        """The job's verified result row, or None (not run yet, or its file was just quarantined)."""
        return self._read_row_checked(self.result_path(job_id), job_id)

    def finished(self) -> dict[str, str]:
        """job_id -> status for every stored result row that passes verification."""
        out = {}
        if self.results.is_dir():
            for p in sorted(self.results.glob("*.parquet")):
                if not p.name.startswith("."):
                    row = self._read_row_checked(p, p.stem)
                    if row is not None:
                        out[p.stem] = row["status"]
        return out

    def rows_outside(self, job_ids) -> list[dict]:
        """Verified result rows of jobs not among ``job_ids``: rows of an earlier manifest whose ids
        differ (other analysis code; see runner._reanalyse)."""
        ids = set(job_ids)
        out = []
        if self.results.is_dir():
            for p in sorted(self.results.glob("*.parquet")):
                if not p.name.startswith(".") and p.stem not in ids:
                    row = self._read_row_checked(p, p.stem)
                    if row is not None:
                        out.append(row)
        return out

    def write_bits(self, name: str, bits: np.ndarray, sample_period_s: float | None) -> Path:
        b = np.asarray(bits, dtype=np.uint8)
        buf = io.BytesIO()
        np.savez_compressed(buf, packed=np.packbits(b), n=np.int64(len(b)),
                            sample_period_s=np.float64(np.nan if sample_period_s is None else sample_period_s))
        p = self.bits / f"{name}.npz"
        self._write(p, buf.getvalue())
        return p

    def _bad_data_file(self, path: Path, name: str, why: str) -> CorruptFileError:
        """Quarantine a damaged bits/waves file and its job's result row (so the job reruns)."""
        msg = self._quarantine(path, why)
        job_id = name.split(".c")[0]
        for p in (self.result_path(job_id),):
            if p.exists():
                self._quarantine(p, f"its data file {path.name} is damaged")
        return CorruptFileError(msg)

    def read_bits(self, name: str) -> tuple[np.ndarray, float | None]:
        """The stored, verified bit stream (uint8 0/1) and its sample period, s.

        Raises :class:`CorruptFileError` (after quarantining the file and its job's row) when the
        file is damaged, :class:`InputError` when it is missing.
        """
        p = self.bits / f"{name}.npz"
        try:
            data = self._verified_bytes(p)
            if data is None:
                raise InputError(f"{p}: no such bit stream; resume the sweep to compute it")
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                n = int(z["n"])
                packed = np.asarray(z["packed"])
                sp = float(z["sample_period_s"])
            if packed.dtype != np.uint8 or packed.ndim != 1 or not 0 <= n <= packed.size * 8:
                raise ValueError(f"{n} bits do not fit {packed.size} packed bytes of {packed.dtype}")
            bits = np.unpackbits(packed)[:n]
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - BadZipFile, ValueError, KeyError, EOFError...: all damage
            raise self._bad_data_file(p, name, f"{exc.__class__.__name__}: {exc}"[:200]) from None
        return bits, (None if np.isnan(sp) else sp)

    def write_waveform(self, name: str, waveform) -> Path:
        p = waveform.save_npz(self.waves / f"{name}.npz")
        # save_npz renames the file itself; the record follows it (a kill -9 in between leaves a
        # file without a record, accepted when it parses)
        self._record(p, p.read_bytes())
        return p

    def read_waveform(self, name: str):
        """The stored, verified :class:`noisecell.waveform.Waveform` ``name``, or None if absent."""
        from ..waveform import Waveform

        p = self.waves / f"{name}.npz"
        try:
            data = self._verified_bytes(p)
        except ValueError as exc:
            raise self._bad_data_file(p, name, str(exc)) from None
        if data is None:
            return None
        try:
            return Waveform.load_npz(p)
        except InputError as exc:
            raise self._bad_data_file(p, name, str(exc).split(": ", 1)[-1][:200]) from None

    def write_result(self, job_id: str, row: Mapping[str, Any]) -> None:
        self._write(self.result_path(job_id), _row_bytes(row))

    # -- adaptive chunks --------------------------------------------------------------------
    def chunk_path(self, job_id: str, k: int) -> Path:
        return self.chunks / job_id / f"{k}.parquet"

    def write_chunk(self, job_id: str, k: int, row: Mapping[str, Any]) -> None:
        self._write(self.chunk_path(job_id, k), _row_bytes(row))

    def read_chunks(self, job_id: str) -> list[dict]:
        """Stored, verified chunk rows 0, 1, ... up to the first missing or damaged one (later ones are
        recomputed)."""
        rows = []
        k = 0
        while (p := self.chunk_path(job_id, k)).exists():
            row = self._read_row_checked(p, job_id, result=False)
            if row is None:
                break
            rows.append(row)
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
        self._write(self.root / "summary.parquet", buf.getvalue())

    def counts(self) -> dict[str, int]:
        """{"total", "done", "failed", "pending"} for the manifest's jobs (a quarantined result is pending)."""
        m = self.read_manifest()
        fin = self.finished()
        ids = [j["job_id"] for j in m["jobs"]]
        done = sum(1 for i in ids if fin.get(i) == "ok")
        failed = sum(1 for i in ids if i in fin and fin[i] != "ok")
        return {"total": len(ids), "done": done, "failed": failed, "pending": len(ids) - done - failed}


def iter_result_files(root: str | os.PathLike) -> Iterable[Path]:
    return sorted(p for p in (Path(root) / "results").glob("*.parquet") if not p.name.startswith("."))
