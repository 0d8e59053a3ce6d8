"""Scale benchmark of ``pack --shard-records`` (``imgfmt.ops.shards``) and the Ray engine:
scale on paper, measured where possible. Prints a markdown report and writes
``docs/scale.md``.

    python scripts/bench_scale.py            # 1M- and 10M-line lists, ~4 min on 2 cores
    python scripts/bench_scale.py --quick    # 100k- and 1M-line lists, ~2 min
    python scripts/bench_scale.py --no-s3 --no-ray --no-report

What it measures, each on this machine, and how:

1. Driver planning, the work ``pack`` does before any task for a ``.lst`` with
   ``shard_records``: ``ListPlanner(list, N)``, ``_check_labels`` over it (its one pass),
   ``planner.ranges()``. Each list size runs in a fresh subprocess (``--child plan``):
   wall time of exactly those three calls, and peak RSS growth (``ru_maxrss`` after minus
   before, imports done). The lists are synthetic (``index<TAB>label<TAB>class_x/img.jpg``,
   1,000 classes, dense indices in scrambled order as a shuffled ``lst-gen`` list has them);
   no image needs to exist. Also: time of each layer of the pass (reading lines, byte
   offsets, ``parse_lst``, the label check) and a cProfile of it, and tracemalloc's peak and
   top allocation sites.
2. Commit: 1,000 shards (real RecordIO ``.rec`` + ``.idx`` of a few KB each, staged
   with ``AtomicOutputs(token=...).stage()`` as ``pack_shard`` does) committed by a
   driver group: ``adopt`` them all, ``write_combined_index``, ``commit``. Locally
   (renames) and against moto's S3 server (``tests/s3_server.py``; a commit is then one
   CompleteMultipartUpload per output, each timed). Also the combined index's cost per
   index line (100 shards of N lines).
3. Per-task throughput: one shard of a ``scripts/make_samples.py`` folder (500x375 JPEGs)
   packed by ``imgfmt.ops.pack.pack(..., shard_records=N, engine="local", workers=1)``,
   pass-through, re-encoded, and ``--resize 256``; the same with the images on (local)
   S3; and on a local Ray cluster (``RayEngine``), cluster start timed on its own.
4. Projection for 50M images on K nodes of 16 cores from those numbers.

Raw numbers: ``--json PATH``.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import json
import logging
import math
import os
import platform
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

#: Anything below this line in an existing report is hand-written and kept on regeneration.
NOTES_MARKER = "<!-- Hand-written notes below this line are kept by scripts/bench_scale.py. -->"

CLASSES = 1000
#: Assumed latency of one S3 request from the driver (real S3, same region).
S3_CALL_SECONDS = 0.030
S3_CALL_RANGE = "20-50 ms"
#: Assumed first-byte latency of an image GET from a worker (real S3, same region).
S3_GET_SECONDS = 0.030
PROJECT_IMAGES = 50_000_000
PROJECT_CORES = 16
PROJECT_NODES = (1, 10, 50, 100)
#: Bytes of one line of a combined .idx at 50M images (``"49999999\t1099511627\n"``).
IDX_LINE_BYTES_50M = 20

# The S3 settings the tests use: fake credentials, never a developer's own ~/.aws.
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIAIMGFMTBENCHKEY00",
    "AWS_SECRET_ACCESS_KEY": "imgfmt-bench-not-a-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_MAX_ATTEMPTS": "3",
}


# --------------------------------------------------------------------------- helpers


def now() -> float:
    return time.perf_counter()


def say(text: str) -> None:
    print(f"[bench_scale] {text}", file=sys.stderr, flush=True)


def fmt_int(n: float) -> str:
    return f"{int(round(n)):,}"


def fmt_s(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.1f} min"
    if seconds >= 10:
        return f"{seconds:.0f} s"
    if seconds >= 1:
        return f"{seconds:.1f} s"
    return f"{seconds * 1000:.0f} ms"


def fmt_mb(n: float) -> str:
    return f"{n / 1e6:,.0f} MB" if n >= 10e6 else f"{n / 1e6:.1f} MB"


def quiet_imgfmt() -> None:
    """Skips and label warnings are expected here; keep the report readable."""
    logging.getLogger("imgfmt").setLevel(logging.ERROR)


def cpu_times() -> float:
    """CPU seconds of this process and its reaped children (user + system)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def rss() -> tuple[int, int]:
    """``(current, peak)`` resident set size of this process, in bytes: ``VmRSS`` and
    ``VmHWM`` of ``/proc/self/status``, which belong to the address space, so a fresh
    ``exec`` starts from zero. (``ru_maxrss`` does not: Linux carries the parent's RSS at
    fork over into the child, hiding any growth below it.)"""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            fields = dict(line.split(":", 1) for line in handle if ":" in line)
        return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return peak, peak


def write_list(path: str, lines: int) -> int:
    """A synthetic im2rec list: dense indices 0..lines-1 in a scrambled order (a shuffled
    list's), labels ``%f`` of 1,000 classes, as lst-gen writes it. Returns its size."""
    step = 2654435761
    while math.gcd(step, lines) != 1:
        step += 2
    with open(path, "w", encoding="utf-8") as handle:
        chunk: list[str] = []
        for i in range(lines):
            key = (i * step) % lines
            label = key % CLASSES
            chunk.append(f"{key}\t{label:.6f}\tclass_{label:04d}/img_{key:09d}.jpg\n")
            if len(chunk) >= 100_000:
                handle.write("".join(chunk))
                chunk = []
        handle.write("".join(chunk))
    return os.path.getsize(path)


def child(args: list[str], timeout: float = 900) -> dict[str, Any]:
    """Run this script as ``--child ...`` in a fresh interpreter; its last stdout line is JSON."""
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- 1. planning


def plan_once(path: str, per_shard: int) -> tuple[Any, float]:
    """Exactly what ``imgfmt.ops.pack.pack`` does for a ``.lst`` with ``shard_records``
    before it starts tasks; returns the planner and the ranges' count."""
    from imgfmt import formats
    from imgfmt.ops.pack import _check_labels
    from imgfmt.ops.shards import ListPlanner

    target = formats.for_output("out.rec", None)
    planner = ListPlanner(path, per_shard)
    _check_labels(planner, False, "out.rec", target)
    planner.planned = True
    ranges = planner.ranges()
    return planner, len(ranges)


def child_plan(path: str, per_shard: int) -> dict[str, Any]:
    """In a fresh process: time and peak RSS growth of one planning pass."""
    quiet_imgfmt()
    import imgfmt.formats  # noqa: F401  (imports before the baseline)
    import imgfmt.ops.pack  # noqa: F401
    import imgfmt.ops.shards  # noqa: F401

    base, _peak = rss()
    started = now()
    planner, shards = plan_once(path, per_shard)
    seconds = now() - started
    after, peak = rss()
    return {
        "lines": planner.total,
        "shards": shards,
        "seconds": seconds,
        "rss_base": base,
        "rss_peak": peak,
        "rss_after": after,
        "rss_growth": peak - base,
        "list_bytes": os.path.getsize(path),
    }


def child_trace(path: str, per_shard: int) -> dict[str, Any]:
    """In a fresh process: tracemalloc's peak during planning and the top sites live at
    the end of the pass (what stays held)."""
    import tracemalloc

    quiet_imgfmt()
    import imgfmt.ops.pack  # noqa: F401
    import imgfmt.ops.shards  # noqa: F401
    from imgfmt import formats
    from imgfmt.formats import lst
    from imgfmt.ops.pack import _check_labels
    from imgfmt.ops.shards import ListPlanner

    # Snapshot at the last entry, while parse_lst's state is still alive (once it returns,
    # its frame and what it held are gone).
    with open(path, "rb") as handle:
        total = sum(1 for line in handle if line.strip())
    held: dict[str, Any] = {}
    original = lst.parse_lst

    def parse_and_snapshot(lines: Any, name: str, first_line: int = 1) -> Iterator[Any]:
        for count, entry in enumerate(original(lines, name, first_line), start=1):
            if count == total:
                held["snapshot"] = tracemalloc.take_snapshot()
            yield entry

    lst.parse_lst = parse_and_snapshot  # type: ignore[assignment]
    try:
        tracemalloc.start()
        planner = ListPlanner(path, per_shard)
        _check_labels(planner, False, "out.rec", formats.for_output("out.rec", None))
        planner.ranges()
        _current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    finally:
        lst.parse_lst = original  # type: ignore[assignment]
    top = []
    snapshot = held["snapshot"].filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    for stat in snapshot.statistics("lineno")[:5]:
        frame = stat.traceback[0]
        where = f"{os.path.relpath(frame.filename, REPO)}:{frame.lineno}"
        source = _source_line(frame.filename, frame.lineno)
        top.append({"where": where, "bytes": stat.size, "count": stat.count, "code": source})
    return {"lines": planner.total, "peak": peak, "top": top}


def _source_line(filename: str, lineno: int) -> str:
    try:
        with open(filename, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if number == lineno:
                    return line.strip()
    except OSError:
        pass
    return ""


def child_layers(path: str, per_shard: int) -> dict[str, Any]:
    """Each layer of the planning pass on its own, adding one at a time (no profiler)."""
    quiet_imgfmt()
    from imgfmt.formats import lst
    from imgfmt.ops.shards import ListPlanner

    def text(raw: Any) -> io.TextIOWrapper:
        return io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="")

    def read_lines() -> int:
        with open(path, "rb", buffering=1 << 20) as raw:
            return sum(1 for _line in text(raw))

    def with_offsets() -> int:  # what ListPlanner's line wrapper adds
        count = offset = 0
        with open(path, "rb", buffering=1 << 20) as raw:
            for line in text(raw):
                offset += len(line.encode("utf-8", "surrogateescape"))
                count += 1
        return count

    def parse() -> int:
        with open(path, "rb", buffering=1 << 20) as raw:
            return sum(1 for _entry in lst.parse_lst(text(raw), path))

    def planner() -> int:
        return sum(1 for _entry in ListPlanner(path, per_shard))

    def full() -> int:
        return plan_once(path, per_shard)[0].total

    layers = [
        ("read lines (TextIOWrapper, newline='')", read_lines),
        ("+ byte offset of each line (encode)", with_offsets),
        ("parse_lst (strict parse, duplicate check)", parse),
        ("ListPlanner (parse_lst + offsets + marks)", planner),
        ("full plan (+ _check_labels, ranges)", full),
    ]
    out = []
    for name, fn in layers:
        fn()  # warm: page cache, imports
        started = now()
        lines = fn()
        out.append({"layer": name, "seconds": now() - started, "lines": lines})
    return {"layers": out}


def child_profile(path: str, per_shard: int) -> dict[str, Any]:
    """cProfile of one planning pass: the top functions by own time (shares only: the
    profiler slows this per-line Python code several times)."""
    quiet_imgfmt()
    plan_once(path, per_shard)  # warm
    profiler = cProfile.Profile()
    started = now()
    profiler.enable()
    plan_once(path, per_shard)
    profiler.disable()
    seconds = now() - started
    stats = pstats.Stats(profiler)
    total = sum(row[2] for row in stats.stats.values())  # type: ignore[attr-defined]
    rows = []
    for (filename, lineno, name), row in stats.stats.items():  # type: ignore[attr-defined]
        _cc, calls, tottime, _cumtime, _callers = row
        where = filename if filename == "~" else f"{os.path.relpath(filename, REPO)}:{lineno}"
        rows.append({"function": name, "where": where, "calls": calls, "own": tottime})
    rows.sort(key=lambda r: -r["own"])
    for row in rows:
        row["share"] = row["own"] / total if total else 0.0
    return {"seconds": seconds, "top": rows[:12]}


CHILDREN: dict[str, Callable[[str, int], dict[str, Any]]] = {
    "plan": child_plan,
    "trace": child_trace,
    "layers": child_layers,
    "profile": child_profile,
}


def bench_planning(work: Path, sizes: list[int], per_shard: int, small: int) -> dict[str, Any]:
    runs = []
    for lines in sizes:
        path = str(work / f"list-{lines}.lst")
        say(f"planning: writing a {fmt_int(lines)}-line list")
        started = now()
        write_list(path, lines)
        made = now() - started
        say(f"planning: {fmt_int(lines)} lines (list written in {made:.1f} s)")
        run = child(["plan", path, str(per_shard)])
        run["lines_per_s"] = run["lines"] / run["seconds"]
        run["bytes_per_line"] = run["rss_growth"] / run["lines"]
        runs.append(run)
        say(
            f"  {run['seconds']:.1f} s, {run['lines_per_s']:,.0f} lines/s, "
            f"RSS +{fmt_mb(run['rss_growth'])} ({run['bytes_per_line']:.1f} B/line)"
        )
        if lines == min(sizes):
            say(f"planning: tracemalloc on {fmt_int(lines)} lines")
            trace = child(["trace", path, str(per_shard)])
    small_path = str(work / f"list-{small}.lst")
    if not os.path.exists(small_path):
        write_list(small_path, small)
    say(f"planning: layers and cProfile on {fmt_int(small)} lines")
    layers = child(["layers", small_path, str(per_shard)])
    profile = child(["profile", small_path, str(per_shard)])
    for path in work.glob("list-*.lst"):
        path.unlink()
    return {
        "per_shard": per_shard,
        "runs": runs,
        "small": small,
        "layers": layers["layers"],
        "profile": profile,
        "trace": trace,
    }


# --------------------------------------------------------------------------- 2. commit


def stage_shards(
    out: str, count: int, records: int, payload_size: int, token: str, threads: int = 1
) -> tuple[list[Any], list[Any], float]:
    """Write ``count`` real RecordIO shards of ``out`` (``records`` records of about
    ``payload_size`` bytes each) and stage them as ``pack_shard`` does; returns the staged
    outputs of each shard, each shard's kept index, and the seconds it took."""
    from imgfmt import formats
    from imgfmt.formats.base import Item, shard_path
    from imgfmt.formats.recordio import pack_image_record
    from imgfmt.storage import AtomicOutputs

    fmt = formats.for_output("out.rec", None)
    image = bytes(range(256)) * (payload_size // 256)

    def one(number: int) -> tuple[Any, Any]:
        group = AtomicOutputs(token=token)
        writer = fmt.shard_writer(shard_path(out, number, count), group)
        for r in range(records):
            key = number * records + r
            label = float(key % CLASSES)
            payload = pack_image_record(label, key, image)
            writer.append(payload, Item(key, (label,), b"", f"c/{key}.jpg"))
        writer.finish()
        return group.stage(), writer.kept_index

    started = now()
    if threads > 1:
        with ThreadPoolExecutor(threads) as pool:
            done = list(pool.map(one, range(count)))
    else:
        done = [one(k) for k in range(count)]
    seconds = now() - started
    return [d[0] for d in done], [d[1] for d in done], seconds


def commit_shards(out: str, staged: list[Any], kept: list[Any]) -> dict[str, float]:
    """What ``pack_sharded`` and ``pack`` do with the tasks' results, timed: adopt every
    staged output into the driver's group, write the combined index, commit."""
    from imgfmt import formats
    from imgfmt.formats.base import write_combined_index
    from imgfmt.storage import AtomicOutputs

    fmt = formats.for_output("out.rec", None)
    started = now()
    group = AtomicOutputs()
    for shard in staged:
        group.adopt(shard)
    adopted = now()
    write_combined_index(fmt, out, group, kept)
    indexed = now()
    group.commit()
    done = now()
    return {
        "adopt": adopted - started,
        "combined_index": indexed - adopted,
        "commit": done - indexed,
        "total": done - started,
    }


def bench_commit_local(work: Path, count: int) -> dict[str, Any]:
    folder = work / "commit-local"
    folder.mkdir()
    out = str(folder / "ds.rec")
    say(f"commit: staging {count} local shards")
    staged, kept, stage_s = stage_shards(out, count, records=4, payload_size=1024, token="bench1")
    say("commit: committing them locally")
    timing = commit_shards(out, staged, kept)
    names = os.listdir(folder)
    recs = sum(n.endswith(".rec") for n in names)
    temps = sum(n.startswith(".imgfmt-tmp-") for n in names)
    shard_bytes = sum(os.path.getsize(folder / n) for n in names if n.endswith(".rec")) / count
    shutil.rmtree(folder)
    if recs != count or temps:
        raise RuntimeError(f"local commit left {recs} .rec and {temps} temporary files")
    return {
        "shards": count,
        "outputs": 2 * count,
        "stage_seconds": stage_s,
        "shard_bytes": shard_bytes,
        **timing,
    }


def bench_combined_index(per_shard: int, shards: int = 100) -> dict[str, Any]:
    """``write_combined_index`` over ``shards`` shards of ``per_shard`` index lines each,
    into memory: the driver's cost per image of the combined index."""
    from imgfmt import formats
    from imgfmt.formats.base import ShardIndex
    from imgfmt.formats.recordio import format_idx_line

    fmt = formats.for_output("out.rec", None)
    record = 110_000  # bytes of a 500x375 JPEG record: offsets of realistic width
    kept = []
    for number in range(shards):
        base = number * per_shard
        text = "".join(format_idx_line(base + i, i * record) for i in range(per_shard))
        kept.append(ShardIndex(per_shard * record, text))
    held = sum(len(k.text) for k in kept)
    sink = io.StringIO()
    started = now()
    base = 0
    for shard in kept:
        sink.write(fmt.combined_index_lines(shard, base))
        base += shard.size
    seconds = now() - started
    lines = shards * per_shard
    return {
        "lines": lines,
        "seconds": seconds,
        "us_per_line": seconds / lines * 1e6,
        "held_bytes_per_line": held / lines,
        "out_bytes_per_line": len(sink.getvalue()) / lines,
    }


# --------------------------------------------------------------------------- S3 (moto)


@contextlib.contextmanager
def moto_s3() -> Iterator[tuple[str, Any]]:
    """moto's S3 server (tests/s3_server.py) with imgfmt pointed at it, as the tests do;
    yields its URL and a boto3 client for setting up."""
    sys.path.insert(0, str(REPO / "tests"))
    from s3_server import start_moto  # type: ignore[import-not-found]

    from imgfmt import s3

    unset = ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN")
    saved = {name: os.environ.get(name) for name in [*S3_ENV, *unset]}
    for name in unset:
        os.environ.pop(name, None)
    os.environ.update(S3_ENV)
    before = s3.settings()
    proc, port = start_moto()
    url = f"http://127.0.0.1:{port}"
    try:
        import boto3

        s3.configure(endpoint_url=url)
        s3.reset()
        yield url, boto3.client("s3", endpoint_url=url)
    finally:
        s3.configure(**before.__dict__)
        s3.reset()
        assert proc.stdin is not None
        proc.stdin.close()
        proc.kill()
        proc.wait(timeout=10)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def count_s3_calls() -> Iterator[Counter[str]]:
    """Count the S3 operations imgfmt's client sends (botocore's before-call event)."""
    from imgfmt import s3

    counts: Counter[str] = Counter()

    def seen(model: Any, **_kwargs: Any) -> None:
        counts[model.name] += 1

    events = s3.client().meta.events
    events.register("before-call.s3", seen)
    try:
        yield counts
    finally:
        events.unregister("before-call.s3", seen)


@contextlib.contextmanager
def timed_completes() -> Iterator[list[float]]:
    """The latency of each ``imgfmt.s3.complete_upload`` (a CompleteMultipartUpload)."""
    from imgfmt import s3

    latencies: list[float] = []
    original = s3.complete_upload

    def timed(*args: Any, **kwargs: Any) -> None:
        started = now()
        original(*args, **kwargs)
        latencies.append(now() - started)

    s3.complete_upload = timed  # type: ignore[assignment]
    try:
        yield latencies
    finally:
        s3.complete_upload = original  # type: ignore[assignment]


def bench_commit_s3(client: Any, count: int) -> dict[str, Any]:
    from imgfmt import s3

    bucket = "imgfmt-scale"
    client.create_bucket(Bucket=bucket)
    out = f"s3://{bucket}/commit/ds.rec"
    say(f"commit (S3): staging {count} shards as multipart uploads (8 threads)")
    staged, kept, stage_s = stage_shards(
        out, count, records=4, payload_size=1024, token="bench2", threads=8
    )
    say("commit (S3): committing them")
    s3.client()  # the client the counters watch
    with count_s3_calls() as calls, timed_completes() as latencies:
        timing = commit_shards(out, staged, kept)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="commit/")
    keys = [item["Key"] for page in pages for item in page.get("Contents", ())]
    pending = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    if sum(k.endswith(".rec") for k in keys) != count or pending:
        raise RuntimeError(f"S3 commit: {len(keys)} keys, {len(pending)} uploads left")
    lat = sorted(latencies)
    return {
        "shards": count,
        "outputs": 2 * count,
        "stage_seconds": stage_s,
        "calls": dict(calls),
        "complete_calls": len(lat),
        "complete_median": statistics.median(lat),
        "complete_p95": lat[int(0.95 * (len(lat) - 1))],
        "complete_mean": statistics.fmean(lat),
        "complete_sum": sum(lat),
        **timing,
    }


# --------------------------------------------------------------------------- 3. per task

MODES: list[tuple[str, dict[str, Any]]] = [
    ("pass-through", {"pass_through": True}),
    ("re-encode (decode + JPEG q95)", {}),
    ("--resize 256", {"resize": 256}),
]


def make_photos(work: Path, classes: int, per_class: int) -> tuple[str, str, int]:
    """A make_samples.py folder and a shuffled .lst of it; returns root, list, image count."""
    from imgfmt.formats import lst

    root = work / "photos"
    subprocess.run(
        [sys.executable, str(HERE / "make_samples.py"), str(root), "--classes", str(classes),
         "--per-class", str(per_class), "--size", "500x375", "--seed", "0"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    entries, _classes = lst.list_images(str(root), recursive=True)
    entries = lst.shuffle_entries(entries, 100)
    list_path = work / "photos.lst"
    with open(list_path, "w", encoding="utf-8", newline="") as handle:
        lst.write_entries(handle, entries)
    return str(root), str(list_path), len(entries)


def pack_run(
    list_path: str, root: str, out: str, mode: dict[str, Any], per_shard: int, engine: Any
) -> dict[str, Any]:
    """One ``pack`` of the list into fresh outputs; wall and CPU time (own + children)."""
    from imgfmt.images import ImageOptions
    from imgfmt.ops.pack import pack

    folder = os.path.dirname(out)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    cpu = cpu_times()
    started = now()
    result = pack(list_path, out, root=root, options=ImageOptions(**mode),
                  shard_records=per_shard, engine=engine, workers=1)  # fmt: skip
    seconds = now() - started
    used = cpu_times() - cpu
    if result.skipped:
        raise RuntimeError(f"{len(result.skipped)} images skipped: {result.skipped[0]}")
    return {
        "seconds": seconds,
        "cpu": used,
        "packed": result.packed,
        "shards": result.shards,
        "bytes": result.bytes_written,
    }


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ordered = sorted(runs, key=lambda r: r["seconds"])
    best = dict(ordered[len(ordered) // 2])
    best["runs"] = [round(r["seconds"], 3) for r in runs]
    best["images_per_s"] = best["packed"] / best["seconds"]
    best["cpu_per_image"] = best["cpu"] / best["packed"]
    return best


def bench_tasks_local(
    work: Path, root: str, list_path: str, images: int, repeats: int
) -> dict[str, Any]:
    out = str(work / "task-local" / "ds.rec")
    results = {}
    for name, mode in MODES:
        say(f"per task (local engine): {name}")
        runs = [pack_run(list_path, root, out, mode, images, "local") for _ in range(repeats)]
        results[name] = median_run(runs)
        say(f"  {results[name]['images_per_s']:.0f} images/s")
    shutil.rmtree(work / "task-local", ignore_errors=True)
    return results


def bench_tasks_s3(
    client: Any, work: Path, root: str, list_path: str, images: int, repeats: int
) -> dict[str, Any]:
    """The same one-shard packs with the images read from (local moto) S3."""
    bucket = "imgfmt-scale-images"
    client.create_bucket(Bucket=bucket)
    files = sorted(p for p in Path(root).rglob("*") if p.is_file())

    def put(path: Path) -> None:
        key = f"photos/{path.relative_to(root).as_posix()}"
        client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())

    say(f"per task (images on S3): uploading {len(files)} images to moto")
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(put, files))
    out = str(work / "task-s3" / "ds.rec")
    results = {}
    for name, mode in MODES[::2]:  # pass-through and --resize 256
        say(f"per task (images on S3): {name}")
        runs = [
            pack_run(list_path, f"s3://{bucket}/photos", out, mode, images, "local")
            for _ in range(repeats)
        ]
        results[name] = median_run(runs)
        say(f"  {results[name]['images_per_s']:.0f} images/s")
    shutil.rmtree(work / "task-s3", ignore_errors=True)
    return results


def _noop(task: Any, _progress: Any) -> Any:
    return task


def bench_ray(
    work: Path, root: str, list_path: str, images: int, repeats: int, noop_sizes: list[int]
) -> dict[str, Any]:
    import ray as ray_module

    from imgfmt.engines.ray import RayEngine

    if ray_module.is_initialized():
        raise RuntimeError("Ray is already initialised in this process")
    say("ray: starting a local cluster (RayEngine.connect)")
    owner = RayEngine()
    started = now()
    owner.connect()
    start_s = now() - started
    cpus = ray_module.cluster_resources().get("CPU", 0)
    # Runs on this connection: another RayEngine sees Ray initialised and leaves it running.
    engine = RayEngine()
    out = str(work / "task-ray" / "ds.rec")
    results: dict[str, Any] = {"start": start_s, "cpus": cpus}
    try:
        say("ray: first task on the fresh cluster")
        first = pack_run(list_path, root, out, MODES[2][1], images, engine)
        first["images_per_s"] = first["packed"] / first["seconds"]
        results["first"] = first
        modes = {}
        for name, mode in MODES[::2]:
            say(f"ray: one shard, {name}")
            runs = [pack_run(list_path, root, out, mode, images, engine) for _ in range(repeats)]
            modes[name] = median_run(runs)
            say(f"  {modes[name]['images_per_s']:.0f} images/s")
        results["modes"] = modes
        tasks = max(1, int(cpus))
        say(f"ray: {tasks} shards at once on {tasks} CPUs, --resize 256")
        runs = [
            pack_run(list_path, root, out, MODES[2][1], images // tasks, engine)
            for _ in range(repeats)
        ]
        results["parallel"] = {"tasks": tasks, **median_run(runs)}
        noop = []
        for count in noop_sizes:
            say(f"ray: {count} no-op tasks through RayEngine.run")
            started = now()
            got = sum(1 for _ in engine.run(_noop, list(range(count)), None))
            engine_s = now() - started
            remote = ray_module.remote(_noop).options(num_cpus=1)
            started = now()
            ray_module.get([remote.remote(i, None) for i in range(count)])
            plain_s = now() - started
            assert got == count
            noop.append({"tasks": count, "engine": engine_s, "plain": plain_s})
        results["noop"] = noop
    finally:
        started = now()
        owner.close()
        results["stop"] = now() - started
        shutil.rmtree(work / "task-ray", ignore_errors=True)
    return results


# --------------------------------------------------------------------------- 4. projection


def project(data: dict[str, Any]) -> dict[str, Any]:
    """50M images on K nodes of C cores: the parallel part at the measured per-task rate,
    and the driver's serial part (planning, combined index, commit) at measured rates."""
    plan = data["planning"]
    per_shard = plan["per_shard"]
    largest = max(plan["runs"], key=lambda r: r["lines"])
    plan_rate = largest["lines_per_s"]
    bytes_per_line = largest["bytes_per_line"]
    shards = PROJECT_IMAGES // per_shard
    index = data["combined_index"]
    local_commit = data["commit_local"]
    s3_commit = data.get("commit_s3")
    measured_call = s3_commit["complete_mean"] if s3_commit else None
    driver = {
        "plan": PROJECT_IMAGES / plan_rate,
        "plan_memory": PROJECT_IMAGES * bytes_per_line,
        "combined_index": PROJECT_IMAGES * index["us_per_line"] / 1e6,
        "held_index_bytes": PROJECT_IMAGES * index["held_bytes_per_line"],
        "combined_index_bytes": PROJECT_IMAGES * IDX_LINE_BYTES_50M,
        "commit_s3": 2 * shards * S3_CALL_SECONDS,
        "commit_s3_measured": 2 * shards * measured_call if measured_call else None,
        "commit_local": local_commit["commit"] / local_commit["shards"] * shards,
        "shards": shards,
    }
    if "ray" in data and data["ray"].get("noop"):
        biggest = max(data["ray"]["noop"], key=lambda r: r["tasks"])
        driver["dispatch"] = shards * biggest["engine"] / biggest["tasks"]
    serial = driver["plan"] + driver["combined_index"] + driver["commit_s3"]
    driver["serial"] = serial
    rows = []
    for name, run in data["tasks_local"].items():
        if name.startswith("re-encode"):
            continue
        rate = run["images_per_s"]
        # On paper: a 1-worker task fetches a batch of 8 images (concurrently), then encodes
        # them; the fetch is not overlapped with the encoding.
        s3_rate = 8 / (8 / rate + S3_GET_SECONDS)
        for nodes in PROJECT_NODES:
            slots = nodes * PROJECT_CORES
            per_task = per_shard / rate
            waves = math.ceil(shards / slots)
            tasks = waves * per_task
            tasks_s3 = waves * per_shard / s3_rate
            rows.append({
                "mode": name, "nodes": nodes, "slots": slots, "rate": rate, "s3_rate": s3_rate,
                "waves": waves, "tasks": tasks, "tasks_s3": tasks_s3,
                "total": serial + tasks, "total_s3": serial + tasks_s3,
                "driver_share": serial / (serial + tasks),
            })  # fmt: skip
        rows[-1]["crossover_nodes"] = PROJECT_IMAGES / (PROJECT_CORES * rate * serial)
        rows[-1]["crossover_nodes_s3"] = PROJECT_IMAGES / (PROJECT_CORES * s3_rate * serial)
    return {"driver": driver, "rows": rows, "per_shard": per_shard}


# --------------------------------------------------------------------------- report


def render(data: dict[str, Any]) -> str:
    meta = data["meta"]
    plan = data["planning"]
    n = plan["per_shard"]
    out: list[str] = []
    w = out.append
    w("# Scale: sharded pack on a cluster, on paper and measured\n")
    w(
        "How `pack --shard-records N` (`imgfmt/ops/shards.py`) and the Ray engine "
        "(`imgfmt/engines/ray.py`) would scale to tens of millions of images: what was "
        "measured on this machine, and what is projected from it. Generated by "
        "`scripts/bench_scale.py` (re-run it to refresh; `--quick` for a short run).\n"
    )
    w(f"- Date: {meta['date']}; whole run: {fmt_s(meta['seconds'])}.")
    w(f"- Machine: {meta['cores']} cores, {meta['ram_gb']:.1f} GB RAM, {meta['platform']}.")
    w(f"- Python {meta['python']}, Ray {meta.get('ray', 'not installed')}, imgfmt at "
      f"{meta['commit']} (with uncommitted changes: {meta['dirty']}).")  # fmt: skip
    w(f"- Shard size N = {n:,} images (`--shard-records {n}`).\n")

    # 1. planning
    w("## 1. Driver planning\n")
    w(
        "What `pack` does in the driver, before any task, for a `.lst` with "
        "`shard_records`: `ListPlanner(list, N)`, `_check_labels(planner, ...)` (the one "
        "pass: every line parsed strictly, the byte offset of every N-th entry noted) and "
        "`planner.ranges()`. Timed around exactly those calls, each list size in a fresh "
        "Python process; memory is peak RSS growth (`VmHWM` after the pass minus "
        "`VmRSS` before it, imports done, from `/proc/self/status`; `after` is the RSS "
        "growth left once the pass is done). Lists are synthetic: "
        "`index<TAB>label<TAB>class_x/img_x.jpg`, "
        "1,000 classes, dense indices in a scrambled (shuffled-like) order; the images need "
        "not exist. Warm page cache.\n"
    )
    w("| lines | list size | shards | time | lines/s | peak RSS growth | bytes/line | after |")
    w("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in plan["runs"]:
        w(
            f"| {fmt_int(r['lines'])} | {fmt_mb(r['list_bytes'])} | {fmt_int(r['shards'])} | "
            f"{r['seconds']:.1f} s | {fmt_int(r['lines_per_s'])} | {fmt_mb(r['rss_growth'])} | "
            f"{r['bytes_per_line']:.1f} | {fmt_mb(r['rss_after'] - r['rss_base'])} |"
        )
    w("")
    w(
        f"Where the time goes ({fmt_int(plan['small'])} lines, each layer timed alone "
        "without a profiler, each row including the ones above it where marked `+`):\n"
    )
    w("| layer | time | lines/s | µs/line |")
    w("|---|---:|---:|---:|")
    for layer in plan["layers"]:
        rate = layer["lines"] / layer["seconds"]
        us = layer["seconds"] / layer["lines"] * 1e6
        w(f"| {layer['layer']} | {layer['seconds']:.2f} s | {fmt_int(rate)} | {us:.2f} |")
    w("")
    prof = plan["profile"]
    w(
        f"cProfile of the full pass ({fmt_int(plan['small'])} lines; {prof['seconds']:.1f} s "
        "under the profiler, which inflates per-call Python code: read the shares, not the "
        "seconds):\n"
    )
    w("| function | where | calls | own-time share |")
    w("|---|---|---:|---:|")
    for row in prof["top"][:10]:
        w(f"| `{row['function']}` | {row['where']} | {fmt_int(row['calls'])} | "
          f"{row['share']:.0%} |")  # fmt: skip
    w("")
    trace = plan["trace"]
    w(
        f"tracemalloc ({fmt_int(trace['lines'])} lines): peak {fmt_mb(trace['peak'])} "
        f"({trace['peak'] / trace['lines']:.1f} B/line) of Python allocations; held at the "
        "end of the pass, by line of code:\n"
    )
    w("| where | code | bytes | bytes/line |")
    w("|---|---|---:|---:|")
    for row in trace["top"]:
        code = row["code"].replace("|", "\\|")
        w(f"| {row['where']} | `{code}` | {fmt_int(row['bytes'])} | "
          f"{row['bytes'] / trace['lines']:.1f} |")  # fmt: skip
    w("\n(The 1 MB read buffer of `storage.open_input` is fixed; the rest grows with the list.)\n")

    # 2. commit
    w("## 2. Commit\n")
    loc = data["commit_local"]
    w(
        f"{loc['shards']:,} shards, each a real RecordIO `.rec` + `.idx` "
        f"({loc['shard_bytes'] / 1e3:.1f} KB `.rec`, 4 records) written and staged as "
        "`pack_shard` does (`AtomicOutputs(token=...)`, `.stage()`); then timed: the "
        "driver's group `adopt`s all of them, `write_combined_index`, `commit`.\n"
    )
    w("| target | outputs | adopt | combined index | commit | total | per output |")
    w("|---|---:|---:|---:|---:|---:|---:|")
    rows = [("local disk (renames)", loc)]
    s3c = data.get("commit_s3")
    if s3c:
        rows.append(("S3: local moto server", s3c))
    for name, r in rows:
        w(
            f"| {name} | {r['outputs']:,} | {fmt_s(r['adopt'])} | {fmt_s(r['combined_index'])} "
            f"| {fmt_s(r['commit'])} | {fmt_s(r['total'])} | "
            f"{r['commit'] / r['outputs'] * 1000:.2f} ms |"
        )
    w("")
    each = loc["stage_seconds"] / loc["shards"] * 1000
    w(
        f"Staging the shards (the tasks' side, not the driver's): {fmt_s(loc['stage_seconds'])}"
        f" locally ({each:.1f} ms a shard, 2 fsyncs)."
    )
    if s3c:
        calls = ", ".join(f"{k} {v:,}" for k, v in sorted(s3c["calls"].items()))
        proj = 2 * 5000 * S3_CALL_SECONDS
        w(
            f"\nS3 commit: requests sent by the driver's commit: {calls}. Each "
            f"CompleteMultipartUpload timed: median {s3c['complete_median'] * 1000:.1f} ms, "
            f"p95 {s3c['complete_p95'] * 1000:.1f} ms, mean {s3c['complete_mean'] * 1000:.1f} "
            f"ms ({s3c['complete_calls']:,} calls, {fmt_s(s3c['complete_sum'])} in all). moto "
            f"on 127.0.0.1 is a lower bound: real S3 takes about {S3_CALL_RANGE} per "
            "CompleteMultipartUpload. The commit runs them concurrently (`s3.executor()`, "
            "16 at a time: the per-call times above include moto's queueing); one after "
            "another, 5,000 shards = "
            f"10,000 calls, at {S3_CALL_SECONDS * 1000:.0f} ms a call = **{fmt_s(proj)}** "
            f"(at the measured moto latency: {fmt_s(10_000 * s3c['complete_mean'])})."
        )
    idx = data["combined_index"]
    w(
        f"\nCombined index at scale: `RecordIO.combined_index_lines` over 100 shards of "
        f"{n:,} index lines (offsets of 110 KB records), into memory: "
        f"{idx['us_per_line']:.2f} µs per image ({fmt_s(idx['seconds'])} for "
        f"{fmt_int(idx['lines'])} lines). The driver also holds every shard's index text "
        f"until the commit (`ShardDone.index`): {idx['held_bytes_per_line']:.1f} B of text "
        "per image.\n"
    )

    # 3. per task
    w("## 3. Per-task throughput\n")
    t = data["tasks"]
    w(
        f"One shard of {t['images']} images ({t['classes']} classes of {t['per_class']}, "
        f"500x375 JPEGs from `scripts/make_samples.py`, {fmt_mb(t['bytes'])}), packed by "
        f"`pack(lst, out.rec, shard_records={t['images']}, engine=..., workers=1)`: one task, "
        "which decodes in one worker process of its own (as every Ray task does). Median of "
        f"{t['repeats']} runs, wall time of the whole `pack` call (driver planning and "
        "commit included, small here); CPU = user + system of the process and its "
        "decoder processes.\n"
    )
    w("| engine | images from | mode | images/s per task | CPU ms/image | CPU/wall | runs (s) |")
    w("|---|---|---|---:|---:|---:|---|")

    def task_row(engine: str, where: str, name: str, r: dict[str, Any]) -> None:
        # A Ray task's CPU is spent in Ray's worker processes, not counted here.
        cpu = "—" if engine == "ray" else f"{r['cpu_per_image'] * 1000:.1f}"
        ratio = "—" if engine == "ray" else f"{r['cpu'] / r['seconds']:.2f}"
        w(
            f"| {engine} | {where} | {name} | {r['images_per_s']:.0f} | {cpu} | {ratio} | "
            f"{', '.join(f'{s:.2f}' for s in r['runs'])} |"
        )

    for name, r in data["tasks_local"].items():
        task_row("local", "local disk", name, r)
    for name, r in (data.get("tasks_s3") or {}).items():
        task_row("local", "S3 (local moto)", name, r)
    ray = data.get("ray")
    if ray and "modes" in ray:
        for name, r in ray["modes"].items():
            task_row("ray", "local disk", name, r)
        par = ray["parallel"]
        w("")
        w(
            f"Ray, local cluster of {ray['cpus']:.0f} CPUs: started by `RayEngine.connect()` "
            f"in **{fmt_s(ray['start'])}**, stopped in {fmt_s(ray['stop'])}. The first task "
            f"on the fresh cluster (worker process start, imports) took "
            f"{fmt_s(ray['first']['seconds'])} for {ray['first']['packed']} images "
            f"({ray['first']['images_per_s']:.0f} images/s); the rows above are warm. "
            f"{par['tasks']} shards of {par['packed'] // par['tasks']} at once, "
            f"`--resize 256`: {par['images_per_s']:.0f} images/s in all "
            f"({par['images_per_s'] / par['tasks']:.0f} per task; this machine's {meta['cores']}"
            " cores also run the driver, raylet and each task's own process next to its "
            "decoder, so this is a floor)."
        )
        w("")
        w("Driver overhead per task (no-op tasks, `RayEngine.run` vs a plain `ray.get`):\n")
        w("| tasks | RayEngine.run | per task | plain ray.get | per task |")
        w("|---:|---:|---:|---:|---:|")
        for r in ray["noop"]:
            w(
                f"| {r['tasks']:,} | {fmt_s(r['engine'])} | "
                f"{r['engine'] / r['tasks'] * 1000:.2f} ms | {fmt_s(r['plain'])} | "
                f"{r['plain'] / r['tasks'] * 1000:.2f} ms |"
            )
    elif ray:
        w(f"\nRay: not measured ({ray.get('skipped')}).")
    w("")
    s3t = data.get("tasks_s3")
    if s3t:
        fetch = s3t["pass-through"]["images_per_s"]
        encode = data["tasks_local"]["--resize 256"]["images_per_s"]
        serial = 1 / (1 / fetch + 1 / encode)
        w(
            "Images on S3: moto is one Python process serving requests on this same 2-core "
            "machine, so its rows measure moto's cost per GET (about "
            f"{1000 / fetch:.1f} ms an image with pass-through), not S3's latency. They do "
            "show how a task combines fetching and encoding: `--resize 256` from S3 reached "
            f"{s3t['--resize 256']['images_per_s']:.0f} images/s, against "
            f"{serial:.0f} if fetching ({fetch:.0f}/s) and encoding ({encode:.0f}/s) "
            "simply add up and {0:.0f} if they overlapped fully: a task does one, then the "
            "other (`_encode_batch` reads a batch of 8, then encodes it, in the one decoder "
            "process).\n".format(min(fetch, encode))
        )

    # 4. projection
    p = data["projection"]
    d = p["driver"]
    w("## 4. Projection: 50M images on K nodes of 16 cores\n")
    w(
        f"{fmt_int(PROJECT_IMAGES)} images in shards of {n:,}: {d['shards']:,} tasks, one "
        "per core at a time (`num_cpus=1`), each at the per-task rate measured above "
        "(images on local disk). Tasks run in waves of K x 16; wall = waves x one task's "
        "time. The driver's serial part is added: planning at the measured lines/s, the "
        "combined index at the measured µs/line, and the S3 commit at "
        f"{S3_CALL_SECONDS * 1000:.0f} ms per CompleteMultipartUpload. Not included: "
        "cluster start and worker start on real nodes (seconds to minutes), Ray's own "
        "per-task dispatch (measured above, overlapped with the tasks), and reading the "
        "list itself from S3.\n"
    )
    w("Driver, serial (one core, whatever the cluster size):\n")
    plan_rate = max(plan["runs"], key=lambda r: r["lines"])["lines_per_s"]
    calls = (
        f"{2 * d['shards']:,} calls x {S3_CALL_SECONDS * 1000:.0f} ms, one after another "
        "(upper bound: they run 16 at a time)"
    )
    steps = [
        ("planning", fmt_s(d["plan"]), f"50M lines / {fmt_int(plan_rate)} lines/s measured"),
        ("planning memory", fmt_mb(d["plan_memory"]),
         "50M x measured B/line (grows with the list)"),
        ("combined index", fmt_s(d["combined_index"]),
         f"50M x {idx['us_per_line']:.2f} µs; about {fmt_mb(d['combined_index_bytes'])} "
         "written by the driver"),
        ("shard index texts held", fmt_mb(d["held_index_bytes"]),
         f"50M x {idx['held_bytes_per_line']:.1f} B, held until the commit"),
        ("commit, S3", fmt_s(d["commit_s3"]), calls),
    ]  # fmt: skip
    if d.get("commit_s3_measured"):
        steps.append(("commit, S3 at moto's latency", fmt_s(d["commit_s3_measured"]),
                      "lower bound"))  # fmt: skip
    steps.append(("commit, local disk", fmt_s(d["commit_local"]),
                  f"measured per shard x {d['shards']:,}"))  # fmt: skip
    if "dispatch" in d:
        steps.append(("Ray dispatch + result collection", fmt_s(d["dispatch"]),
                      f"measured ms/no-op task x {d['shards']:,}; overlaps the tasks"))  # fmt: skip
    steps.append(("**serial total** (planning + combined index + S3 commit)",
                  f"**{fmt_s(d['serial'])}**", ""))  # fmt: skip
    w("| step | 50M images | how |")
    w("|---|---:|---|")
    for step in steps:
        w("| " + " | ".join(step) + " |")
    w("")
    w(
        "Wall time. `S3-latency` columns: the same, with each task's rate cut by an "
        f"image GET latency of {S3_GET_SECONDS * 1000:.0f} ms per batch of 8 (a task "
        "fetches a batch's images concurrently, then encodes them; fetching and encoding "
        "do not overlap with one decoder), on paper: rate' = 8 / (8/rate + 0.03 s).\n"
    )
    w(
        "| mode | nodes | cores | waves | tasks | + driver = wall | driver share "
        "| S3-latency rate | S3-latency wall |"
    )
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in p["rows"]:
        w(
            f"| {r['mode']} | {r['nodes']} | {r['slots']:,} | {r['waves']} | {fmt_s(r['tasks'])} "
            f"| {fmt_s(r['total'])} | {r['driver_share']:.0%} | {r['s3_rate']:.0f}/s | "
            f"{fmt_s(r['total_s3'])} |"
        )
    w("")

    def nodes(x: float) -> str:
        return f"{x:.1f} node" + ("" if x < 1.05 else "s") if x < 10 else f"{x:.0f} nodes"

    for r in p["rows"]:
        if "crossover_nodes" in r:
            w(
                f"- {r['mode']}: the driver's serial {fmt_s(d['serial'])} equals the parallel "
                f"part at about **{nodes(r['crossover_nodes'])}** of 16 cores "
                f"({nodes(r['crossover_nodes_s3'])} with the S3 latency); past that, more "
                "nodes buy little."
            )
    w("")
    w(
        "Assumptions: a core packs at the rate one task reached here (the same CPU "
        "class; a task also uses a little CPU in its own process besides its decoder, "
        "see CPU/wall above); images read from S3 at the local-disk rate is optimistic, "
        "by the S3-latency columns' margin or more (throughput per node, request rates per "
        "prefix); waves are whole (the last wave's idle cores are counted). The driver is "
        "one process on one core: planning is linear in lines, the combined index linear "
        "in images, the commit linear in shards; none of it shrinks with more nodes.\n"
    )
    w(NOTES_MARKER)
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- main


def meta_info(seconds: float) -> dict[str, Any]:
    import datetime as dt

    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
        return proc.stdout.strip()

    try:
        import ray

        ray_version = ray.__version__
    except ImportError:
        ray_version = "not installed"
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "seconds": seconds,
        "cores": os.cpu_count(),
        "ram_gb": pages / 1e9,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "ray": ray_version,
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": "yes" if git("status", "--porcelain") else "no",
    }


def write_report(path: Path, text: str) -> None:
    """Write the report, keeping hand-written notes below the marker of an existing one."""
    notes = ""
    if path.exists():
        old = path.read_text(encoding="utf-8")
        if NOTES_MARKER in old:
            notes = old.split(NOTES_MARKER, 1)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    body = text.rstrip("\n")
    body = body[: -len(NOTES_MARKER)].rstrip("\n") + "\n\n" + NOTES_MARKER
    path.write_text(body + (notes if notes.strip() else "\n"), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100k- and 1M-line lists")
    parser.add_argument("--sizes", help="list sizes to plan, comma-separated (e.g. 1e6,1e7)")
    parser.add_argument("--shard-records", type=int, default=10_000)
    parser.add_argument("--commit-shards", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-s3", action="store_true", help="skip the moto S3 measurements")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray measurements")
    parser.add_argument("--report", default=str(REPO / "docs" / "scale.md"))
    parser.add_argument("--no-report", action="store_true", help="print only")
    parser.add_argument("--json", help="also write the raw numbers here")
    parser.add_argument("--workdir", help="scratch folder (default: a new temporary one)")
    parser.add_argument("--child", nargs=3, metavar=("KIND", "LIST", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        kind, path, per_shard = args.child
        print(json.dumps(CHILDREN[kind](path, int(per_shard))))
        return 0

    quiet_imgfmt()
    if args.sizes:
        sizes = [int(float(s)) for s in args.sizes.split(",")]
    else:
        sizes = [100_000, 1_000_000] if args.quick else [1_000_000, 10_000_000]
    small = min(200_000, min(sizes))
    started = now()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="imgfmt-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {}
    try:
        data["planning"] = bench_planning(work, sizes, args.shard_records, small)
        data["commit_local"] = bench_commit_local(work, args.commit_shards)
        say("combined index: 100 shards of N index lines")
        data["combined_index"] = bench_combined_index(args.shard_records)

        classes, per_class = 4, 100
        say(f"per task: making {classes} x {per_class} sample photos")
        root, list_path, images = make_photos(work, classes, per_class)
        data["tasks"] = {
            "images": images, "classes": classes, "per_class": per_class,
            "repeats": args.repeats,
            "bytes": sum(p.stat().st_size for p in Path(root).rglob("*") if p.is_file()),
        }  # fmt: skip
        data["tasks_local"] = bench_tasks_local(work, root, list_path, images, args.repeats)

        if not args.no_s3:
            try:
                with moto_s3() as (_url, client):
                    data["commit_s3"] = bench_commit_s3(client, args.commit_shards)
                    data["tasks_s3"] = bench_tasks_s3(
                        client, work, root, list_path, images, args.repeats
                    )
            except Exception as err:  # noqa: BLE001  (report it, go on)
                say(f"S3 skipped: {err}")
                data["s3_skipped"] = str(err)
        if not args.no_ray:
            noop = [1000] if args.quick else [1000, 4000]
            try:
                data["ray"] = bench_ray(work, root, list_path, images, args.repeats, noop)
            except Exception as err:  # noqa: BLE001
                say(f"Ray skipped: {err}")
                data["ray"] = {"skipped": str(err)}
        data["projection"] = project(data)
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    data["meta"] = meta_info(now() - started)
    report = render(data)
    print(report)
    if not args.no_report:
        write_report(Path(args.report), report)
        say(f"wrote {args.report}")
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
