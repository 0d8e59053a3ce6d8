"""`make bench`: time imgfmt against mxnet 1.9.1's im2rec.py and `cat`; write BENCHMARKS.md.

    python scripts/bench.py --mxnet-python .venv-mxnet/bin/python [--data bench-data]
                            [--repeats 5] [--slow-repeats 5] [--report BENCHMARKS.md]

Every measurement is the wall time of a whole process (``time.perf_counter`` around
``subprocess.run``), start-up included, as a user sees it. Within a repeat the tools
alternate and their order rotates from one repeat to the next; the report gives the
median. Both tools get the same inputs, the same ``.lst`` and the same worker count
(the core count). ``cat`` of the same bytes to ``/dev/null`` is the I/O floor. Cases 5c
and 6b time the same imgfmt command on a JSON Lines file and on a .rec of the same images
(their own table, ratio .jsonl / .rec).

The corpora are generated once by ``scripts/make_samples.py`` (deterministic, natural-looking
JPEGs) and reused while their stamp file matches. Everything else is rebuilt under
``DATA/run/`` on every run. Raw numbers go to ``DATA/results.json``. Text below the notes
marker of an existing report is kept, so hand-written analysis survives a re-run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MAKE_SAMPLES = HERE / "make_samples.py"

IMGFMT, IM2REC, CAT = "imgfmt", "im2rec", "cat"
#: The two sides of a format comparison: the same imgfmt command on a .jsonl and on a .rec.
JSONL, REC = "jsonl", "rec"
#: Anything below this line in an existing report is hand-written and kept on regeneration.
NOTES_MARKER = "<!-- Hand-written notes below this line are kept by scripts/bench.py. -->"
#: Interval between two samples of the process tree's memory.
RSS_POLL_SECONDS = 0.02
#: PSS (smaps_rollup walks page tables and competes with the workers' page faults) is read
#: on every this many samples only.
PSS_EVERY = 5
#: The 20,000-image list repeats the ImageNet-like list this many times.
RSS_LIST_COPIES = 10
RESIZE_ARGS = ("--resize", "256", "--quality", "90")
STARTUP_RUNS = 10
#: The timed commands run as an installed package runs: with bytecode caches. A session
#: that sets PYTHONDONTWRITEBYTECODE would make imgfmt (an editable install, no .pyc
#: written) compile every module on every start; pip-installed mxnet has its .pyc already.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
IM2REC_STARTUP_RUNS = 3


@dataclass(frozen=True)
class Corpus:
    """One generated image folder: ``classes`` sub-folders of ``per_class`` JPEGs each."""

    name: str
    classes: int
    per_class: int
    size: str
    seed: int = 0

    def args(self) -> list[str]:
        return [
            "--classes",
            str(self.classes),
            "--per-class",
            str(self.per_class),
            "--size",
            self.size,
            "--seed",
            str(self.seed),
        ]


IMAGENET = Corpus("imagenet", classes=10, per_class=200, size="500x375")
PHOTOS = Corpus("photos", classes=4, per_class=30, size="3000x2000")


@dataclass
class Target:
    text: str
    check: Callable[[float], bool]


@dataclass
class CaseResult:
    name: str
    runs: dict[str, list[float]] = field(default_factory=dict)
    target: str = ""
    met: bool | None = None
    note: str = ""

    def median(self, tool: str) -> float | None:
        times = self.runs.get(tool)
        return statistics.median(times) if times else None

    def speedup(self) -> float | None:
        """im2rec time / imgfmt time: how many times faster imgfmt is."""
        ours, theirs = self.median(IMGFMT), self.median(IM2REC)
        return theirs / ours if ours and theirs else None

    def cat_ratio(self) -> float | None:
        """imgfmt time / cat time: how far from the I/O floor."""
        ours, floor = self.median(IMGFMT), self.median(CAT)
        return ours / floor if ours and floor else None

    def rec_ratio(self) -> float | None:
        """.jsonl time / .rec time: what JSON Lines costs against RecordIO."""
        jsonl, rec = self.median(JSONL), self.median(REC)
        return jsonl / rec if jsonl and rec else None

    def ratio(self, on: str) -> float | None:
        """What a target is checked on: ``speedup``, ``cat_ratio`` or ``rec_ratio``."""
        value: float | None = getattr(self, on)()
        return value


@dataclass
class Memory:
    """Peak memory of a process tree, sampled every ``RSS_POLL_SECONDS``."""

    label: str
    tree_rss_mb: float = 0.0
    tree_pss_mb: float = 0.0
    max_process_rss_mb: float = 0.0
    max_processes: int = 0
    seconds: float = 0.0


# --------------------------------------------------------------------------- processes


def run(cmd: Sequence[str], *, ok: Sequence[int] = (0,)) -> float:
    """Run ``cmd`` to completion, output discarded; return its wall time in seconds."""
    started = time.perf_counter()
    proc = subprocess.run(
        list(cmd), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=CHILD_ENV
    )
    elapsed = time.perf_counter() - started
    if proc.returncode not in ok:
        tail = proc.stderr.decode(errors="replace")[-2000:]
        sys.exit(f"bench: {' '.join(cmd)} exited {proc.returncode}\n{tail}")
    return elapsed


def _tree(root: int) -> list[int]:
    """``root`` and all its descendants, from each thread's ``/proc/PID/task/TID/children``
    (cheaper than scanning every process: the sampler must not slow what it measures)."""
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/children", "rb") as handle:
                    todo.extend(int(child) for child in handle.read().split())
            except OSError:
                continue
    return tree


def _kb_field(path: str, name: bytes) -> int:
    try:
        with open(path, "rb") as handle:
            for line in handle:
                if line.startswith(name):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def peak_memory(label: str, cmd: Sequence[str]) -> Memory:
    """Run ``cmd`` and sample the memory of it and all its descendants until it ends.

    RSS summed over the tree counts pages shared by forked workers once per process
    (an upper bound); PSS shares them out (the tree's real footprint).
    """
    memory = Memory(label)
    started = time.perf_counter()
    proc = subprocess.Popen(
        list(cmd), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=CHILD_ENV
    )
    samples = 0
    try:
        while proc.poll() is None:
            tree = _tree(proc.pid)
            rss = [_kb_field(f"/proc/{pid}/status", b"VmRSS:") for pid in tree]
            if samples % PSS_EVERY == 0:
                pss = sum(_kb_field(f"/proc/{pid}/smaps_rollup", b"Pss:") for pid in tree)
                memory.tree_pss_mb = max(memory.tree_pss_mb, pss / 1024)
            samples += 1
            memory.tree_rss_mb = max(memory.tree_rss_mb, sum(rss) / 1024)
            memory.max_process_rss_mb = max(memory.max_process_rss_mb, max(rss) / 1024)
            memory.max_processes = max(memory.max_processes, len(tree))
            time.sleep(RSS_POLL_SECONDS)
    finally:
        _out, err = proc.communicate()
    memory.seconds = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} exited {proc.returncode}\n{err.decode()[-2000:]}")
    return memory


# --------------------------------------------------------------------------- corpora


def ensure_corpus(corpus: Corpus, data: Path, jobs: int) -> dict[str, object]:
    """Generate ``corpus`` under ``data`` unless a matching stamp says it is there already."""
    folder = data / corpus.name
    stamp = data / f"{corpus.name}.stamp"
    expected = {"args": corpus.args(), "files": corpus.classes * corpus.per_class}
    files = sorted(folder.rglob("*.jpg")) if folder.is_dir() else []
    if (
        stamp.exists()
        and json.loads(stamp.read_text()) == expected
        and len(files) == expected["files"]
    ):
        print(f"bench: reusing {folder} ({len(files)} images)", flush=True)
    else:
        print(f"bench: generating {folder} ({expected['files']} images) ...", flush=True)
        stamp.unlink(missing_ok=True)
        partial = data / f"{corpus.name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)
        cmd = [sys.executable, str(MAKE_SAMPLES), str(partial), *corpus.args()]
        subprocess.run([*cmd, "--jobs", str(jobs)], check=True)
        partial.rename(folder)
        stamp.write_text(json.dumps(expected))
        files = sorted(folder.rglob("*.jpg"))
    sizes = [f.stat().st_size for f in files]
    return {
        "name": corpus.name,
        "images": len(files),
        "classes": corpus.classes,
        "size": corpus.size,
        "total_mb": sum(sizes) / 1e6,
        "mean_kb": statistics.mean(sizes) / 1e3,
        "median_kb": statistics.median(sizes) / 1e3,
    }


def lst_paths(lst: Path, root: Path) -> list[str]:
    """The image files a ``.lst`` names, in list order."""
    lines = lst.read_text(encoding="utf-8").splitlines()
    return [str(root / line.rsplit("\t", 1)[1]) for line in lines if line]


def repeat_lst(src: Path, dst: Path, copies: int) -> int:
    """Write ``src``'s lines ``copies`` times with fresh indices 0, 1, ...; return the count."""
    lines = [line for line in src.read_text(encoding="utf-8").splitlines() if line]
    out = []
    for n in range(copies * len(lines)):
        _index, rest = lines[n % len(lines)].split("\t", 1)
        out.append(f"{n}\t{rest}\n")
    dst.write_text("".join(out), encoding="utf-8")
    return len(out)


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- the benchmark


@dataclass
class Tools:
    imgfmt: str
    mxnet_python: str
    im2rec: str
    workers: int

    def ours(self, *args: str) -> list[str]:
        return [self.imgfmt, *args]

    def theirs(self, *args: str) -> list[str]:
        return [self.mxnet_python, self.im2rec, *args]

    def pack(self, lst: Path, out: Path, root: Path, *options: str) -> list[str]:
        return self.ours(
            "-q", "pack", str(lst), str(out), "--root", str(root), *options, "-j", str(self.workers)
        )

    def im2rec_pack(self, prefix: Path, root: Path, *options: str) -> list[str]:
        """im2rec reads PREFIX.lst and writes PREFIX.rec and PREFIX.idx beside it."""
        return self.theirs(str(prefix), str(root), *options, "--num-thread", str(self.workers))


@dataclass
class Case:
    """One timed comparison: a command per tool, and what to clear before each run."""

    name: str
    commands: dict[str, list[str]]
    repeats: int
    target: Target | None = None
    target_on: str = "speedup"  # or "cat_ratio", or "rec_ratio" (JSONL against REC)
    #: What each tool writes, removed (untimed) before each of its runs: every run starts clean.
    outputs: dict[str, list[Path]] = field(default_factory=dict)
    note: str = ""


def remove(paths: Sequence[Path]) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def find_im2rec(mxnet_python: str) -> str:
    # The venv's python is a symlink to the system one: look beside it, do not resolve it.
    venv = Path(mxnet_python).absolute().parent.parent
    found = sorted(venv.glob("lib/python*/site-packages/mxnet/tools/im2rec.py"))
    if not found:
        sys.exit(f"bench: no mxnet/tools/im2rec.py under {venv} (run `make bench`)")
    return str(found[0])


def build_cases(
    tools: Tools, data: Path, run_dir: Path, repeats: int, slow_repeats: int
) -> tuple[list[Case], dict[str, Path]]:
    """Prepare the run directory (lists, a packed set) and describe every timed case."""
    imagenet, photos = data / IMAGENET.name, data / PHOTOS.name
    lists = run_dir / "lists"
    lists.mkdir(parents=True)
    # One list per corpus, made by imgfmt (byte-identical to im2rec's, checked below), fed
    # to both tools. im2rec packs every PREFIX*.lst in PREFIX's folder: one folder each.
    for corpus in (imagenet, photos):
        run(tools.ours("-q", "lst-gen", str(corpus), str(lists / corpus.name), "--recursive"))
    work: dict[str, Path] = {}
    for key, corpus in (("pt", imagenet), ("resize", imagenet), ("photos", photos)):
        folder = run_dir / IM2REC / key
        folder.mkdir(parents=True)
        shutil.copy(lists / f"{corpus.name}.lst", folder / f"{corpus.name}.lst")
        work[key] = folder / corpus.name
    ours = run_dir / IMGFMT
    ours.mkdir()
    packed = run_dir / "packed" / "imagenet.rec"  # the set verify and unpack read
    packed.parent.mkdir()
    run(tools.pack(lists / "imagenet.lst", packed, imagenet, "--pass-through"))
    lstgen = run_dir / "lstgen"
    (lstgen / IMGFMT).mkdir(parents=True)
    (lstgen / IM2REC).mkdir(parents=True)
    # The same 2,000 files listed RSS_LIST_COPIES times: 20,000 records, for the peak memory
    # of pack and for verify at a size where reading, not start-up, dominates.
    lst_20k = lists / "imagenet20k.lst"
    count_20k = repeat_lst(lists / "imagenet.lst", lst_20k, RSS_LIST_COPIES)
    packed_20k = packed.with_name("imagenet20k.rec")
    run(tools.pack(lst_20k, packed_20k, imagenet, "--pass-through"))
    mb_20k = packed_20k.stat().st_size / 1e6
    # The same 2,000 images as JSON Lines (the format follows the extension), for 5c and 6b.
    packed_jsonl = packed.with_suffix(".jsonl")
    run(tools.pack(lists / "imagenet.lst", packed_jsonl, imagenet, "--pass-through"))
    imagenet_files = lst_paths(lists / "imagenet.lst", imagenet)
    files_20k = lst_paths(lst_20k, imagenet)  # each file as many times as listed
    photo_files = lst_paths(lists / "photos.lst", photos)
    unpacked = run_dir / "unpacked"
    unpacked_jsonl, unpacked_rec = run_dir / "unpacked-jsonl", run_dir / "unpacked-rec"

    def rec_outputs(stem: Path) -> list[Path]:
        return [stem.with_suffix(".rec"), stem.with_suffix(".idx")]

    cases = [
        Case(
            "1. list generation (2,000 images, 10 classes)",
            {
                IMGFMT: tools.ours(
                    "-q", "lst-gen", str(imagenet), str(lstgen / IMGFMT / "imagenet"), "--recursive"
                ),
                IM2REC: tools.theirs(
                    str(lstgen / IM2REC / "imagenet"), str(imagenet), "--list", "--recursive"
                ),
            },
            repeats,
            note="no cat floor: listing reads no image bytes; im2rec's time is mostly "
            "importing mxnet",
        ),
        Case(
            "2. pack --pass-through, ImageNet-like",
            {
                IMGFMT: tools.pack(
                    lists / "imagenet.lst", ours / "pt.rec", imagenet, "--pass-through"
                ),
                IM2REC: tools.im2rec_pack(work["pt"], imagenet, "--pass-through"),
                CAT: ["cat", *imagenet_files],
            },
            repeats,
            Target(">= 3x faster than im2rec", lambda s: s >= 3.0),
            outputs={IMGFMT: rec_outputs(ours / "pt"), IM2REC: rec_outputs(work["pt"])},
        ),
        Case(
            f"2b. pack --pass-through, {count_20k:,}-image list ({mb_20k:.0f} MB)",
            {
                IMGFMT: tools.pack(lst_20k, ours / "pt20k.rec", imagenet, "--pass-through"),
                CAT: ["cat", *files_20k],
            },
            slow_repeats,
            Target("within 2.5x of cat", lambda r: r <= 2.5),
            target_on="cat_ratio",
            outputs={IMGFMT: rec_outputs(ours / "pt20k")},
            note=f"the 2,000 files listed {RSS_LIST_COPIES} times (as in 5b), into a fresh "
            f".rec; cat reads the {count_20k:,} paths in list order; im2rec left out to keep "
            "the run short (it takes about 10x as long)",
        ),
        Case(
            "3. pack --resize 256 --quality 90, ImageNet-like",
            {
                IMGFMT: tools.pack(
                    lists / "imagenet.lst", ours / "resize.rec", imagenet, *RESIZE_ARGS
                ),
                IM2REC: tools.im2rec_pack(work["resize"], imagenet, *RESIZE_ARGS),
                CAT: ["cat", *imagenet_files],
            },
            slow_repeats,
            Target(">= 1.3x faster than im2rec", lambda s: s >= 1.3),
            outputs={IMGFMT: rec_outputs(ours / "resize"), IM2REC: rec_outputs(work["resize"])},
        ),
        Case(
            "4. pack --resize 256 --quality 90, photos",
            {
                IMGFMT: tools.pack(lists / "photos.lst", ours / "photos.rec", photos, *RESIZE_ARGS),
                IM2REC: tools.im2rec_pack(work["photos"], photos, *RESIZE_ARGS),
                CAT: ["cat", *photo_files],
            },
            slow_repeats,
            Target(">= 3x faster than im2rec", lambda s: s >= 3.0),
            outputs={IMGFMT: rec_outputs(ours / "photos"), IM2REC: rec_outputs(work["photos"])},
        ),
        Case(
            "5. verify without decode (framing + index), pass-through .rec",
            {
                IMGFMT: tools.ours("-q", "verify", str(packed)),
                CAT: ["cat", str(packed)],
            },
            repeats,
            Target("within 3x of cat", lambda r: r <= 3.0),
            target_on="cat_ratio",
            note="im2rec has no verify",
        ),
        Case(
            f"5b. same, {count_20k:,}-record pass-through .rec "
            f"({packed_20k.stat().st_size / 1e6:.0f} MB)",
            {
                IMGFMT: tools.ours("-q", "verify", str(packed_20k)),
                CAT: ["cat", str(packed_20k)],
            },
            repeats,
            Target("within 3x of cat", lambda r: r <= 3.0),
            target_on="cat_ratio",
            note="the 2,000 records listed 10 times; shows throughput once start-up is small",
        ),
        Case(
            "6. unpack, pass-through .rec",
            {
                IMGFMT: tools.ours("-q", "unpack", str(packed), str(unpacked)),
                CAT: ["cat", str(packed)],
            },
            repeats,
            outputs={IMGFMT: [unpacked]},
            note="im2rec has no unpack",
        ),
        Case(
            "5c. verify, JSON Lines (.jsonl) vs .rec",
            {
                JSONL: tools.ours("-q", "verify", str(packed_jsonl)),
                REC: tools.ours("-q", "verify", str(packed)),
            },
            repeats,
            Target("within 1.5x of the .rec", lambda r: r <= 1.5),
            target_on="rec_ratio",
        ),
        Case(
            "6b. unpack, JSON Lines vs .rec",
            {
                JSONL: tools.ours("-q", "unpack", str(packed_jsonl), str(unpacked_jsonl)),
                REC: tools.ours("-q", "unpack", str(packed), str(unpacked_rec)),
            },
            repeats,
            Target("within 1.5x of the .rec", lambda r: r <= 1.5),
            target_on="rec_ratio",
            outputs={JSONL: [unpacked_jsonl], REC: [unpacked_rec]},
            note="the .jsonl's files are named after the paths it stores, the .rec's after "
            "record indices (a .rec keeps no path)",
        ),
    ]
    paths = {
        "lists": lists,
        "lst_20k": lst_20k,
        "packed": packed,
        "packed_jsonl": packed_jsonl,
        "lstgen": lstgen,
        "ours": ours,
        "pt_im2rec": work["pt"].with_suffix(".rec"),
    }
    return cases, paths


def time_cases(cases: list[Case]) -> list[CaseResult]:
    """Run every case ``repeats`` times, tools alternating, their order rotating per repeat."""
    results = [CaseResult(c.name, {tool: [] for tool in c.commands}) for c in cases]
    for rep in range(max(c.repeats for c in cases)):
        for case, result in zip(cases, results):
            if rep >= case.repeats:
                continue
            tools = list(case.commands)
            shift = rep % len(tools)
            for tool in tools[shift:] + tools[:shift]:
                remove(case.outputs.get(tool, []))
                # No run pays for the write-back of an earlier one's output.
                os.sync()
                seconds = run(case.commands[tool])
                result.runs[tool].append(seconds)
                print(f"bench: [{rep + 1}/{case.repeats}] {case.name}: {tool} {seconds:.3f} s")
    for case, result in zip(cases, results):
        result.note = case.note
        if case.target:
            value = result.ratio(case.target_on)
            result.target = case.target.text
            result.met = case.target.check(value) if value is not None else None
    return results


def warm_up(tools: Tools, data: Path) -> None:
    """Untimed: compile imgfmt's bytecode, read every input once (page cache) and start
    each tool once."""
    spec = importlib.util.find_spec("imgfmt")
    if spec and spec.submodule_search_locations:
        package = list(spec.submodule_search_locations)[0]
        run([str(Path(sys.executable).parent / "python"), "-m", "compileall", "-q", package])
    files = [str(p) for corpus in (IMAGENET, PHOTOS) for p in (data / corpus.name).rglob("*")]
    run(["cat", *[f for f in files if os.path.isfile(f)]])
    run(tools.ours("--help"))
    run(tools.theirs("--help"))


def median_run(cmd: list[str], runs: int) -> tuple[float, list[float]]:
    times = [run(cmd) for _ in range(runs)]
    return statistics.median(times), times


# --------------------------------------------------------------------------- the report


def machine_info(tools: Tools) -> dict[str, object]:
    from importlib.metadata import version

    from PIL import features

    model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    probe = (
        "import importlib.metadata as m, platform; "
        "print(platform.python_version(), m.version('mxnet'), "
        "m.version('opencv-python-headless'), m.version('numpy'))"
    )
    mx_python, mxnet, opencv, mx_numpy = subprocess.run(
        [tools.mxnet_python, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    git = ["git", "-C", str(REPO)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain", "--", "imgfmt"], capture_output=True)
    revision = commit.stdout.strip() or "unknown"
    if dirty.stdout.strip():
        revision += " with uncommitted changes in imgfmt/"
    return {
        "revision": revision,
        "cores": os.cpu_count(),
        "cpu": model,
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "pillow": version("pillow"),
        "libjpeg_turbo": features.version("libjpeg_turbo"),
        "imgfmt": version("imgfmt"),
        "mxnet_python": mx_python,
        "mxnet": mxnet,
        "opencv": opencv,
        "mxnet_numpy": mx_numpy,
        "workers": tools.workers,
    }


def fmt_s(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def fmt_x(value: float | None, suffix: str = "x") -> str:
    return "—" if value is None else f"{value:.2f}{suffix}"


def met_text(met: bool | None) -> str:
    return "—" if met is None else ("**yes**" if met else "**no**")


def render(results: dict[str, Any], old_report: str | None) -> str:
    machine, corpora, cases = results["machine"], results["corpora"], results["cases"]
    memory, startup, rss_target = results["memory"], results["startup"], results["rss_target"]
    lines = [
        "# Benchmarks",
        "",
        "imgfmt against mxnet 1.9.1's `tools/im2rec.py`, and `cat` of the same bytes as the I/O",
        "floor. Generated by `make bench` (`scripts/bench.py`); re-run it to refresh this file.",
        "",
        f"- Date: {results['date']}; whole bench run: {results['total_seconds'] / 60:.1f} min.",
        f"- Machine: {machine['cores']} cores ({machine['cpu']}), {machine['memory_gb']} GB RAM, "
        f"{machine['os']}.",
        f"- imgfmt {machine['imgfmt']} at {machine['revision']}: Python {machine['python']}, "
        f"Pillow {machine['pillow']} (libjpeg-turbo {machine['libjpeg_turbo']}).",
        f"- im2rec: mxnet {machine['mxnet']}, OpenCV {machine['opencv']}, numpy "
        f"{machine['mxnet_numpy']}, Python {machine['mxnet_python']} (its own venv).",
        f"- Workers: {machine['workers']} for both (`imgfmt -j {machine['workers']}`, "
        f"`im2rec.py --num-thread {machine['workers']}`).",
        "",
        "## Corpora",
        "",
        "Generated deterministically by `scripts/make_samples.py` (smooth lit gradients, soft",
        "shapes, texture and grain: JPEG sizes and decode costs of real photos, not flat colour",
        "or noise), JPEG quality 90, into `bench-data/` (cached; rebuilt when its stamp changes).",
        "",
        "| corpus | images | classes | pixels | total | mean file | median file |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for c in corpora:
        lines.append(
            f"| {c['name']} | {c['images']:,} | {c['classes']} | {c['size']} | "
            f"{c['total_mb']:.1f} MB | {c['mean_kb']:.0f} KB | {c['median_kb']:.0f} KB |"
        )
    lines += [
        "",
        "## Method",
        "",
        "Wall time of each whole command as a subprocess of the bench script (start-up, imports,",
        "worker start and output included), median of the runs shown. In each repeat the tools",
        "run one after the other, their order rotating from repeat to repeat. Both tools pack",
        "the same `.lst` (made by `imgfmt lst-gen`, byte-identical to im2rec's) into fresh",
        "outputs. OS caches are not dropped (that needs root): one untimed `cat` of every input",
        "and one untimed `--help` of each tool warm them first, so all times are warm-cache.",
        "imgfmt's bytecode is compiled first and the commands run without",
        "`PYTHONDONTWRITEBYTECODE`, as an installed package runs (mxnet's is pip-compiled).",
        "Before each run the previous outputs are deleted and `sync` flushes pending writes.",
        "`cat` reads the same bytes to `/dev/null`: the input images for pack, the `.rec` for",
        "verify and unpack.",
        "",
        "## Results",
        "",
        "Speedup is im2rec time / imgfmt time (higher is better); the cat ratio is imgfmt time /",
        "cat time (lower is better; 1 would be pure I/O).",
        "",
        "| case | runs | imgfmt s | im2rec s | cat s | speedup vs im2rec | imgfmt/cat "
        "| target | met? |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    # Cases timed on a .jsonl and a .rec (tools JSONL, REC) have a table of their own below.
    by_format = [c for c in cases if JSONL in c["medians"]]
    for c in cases:
        if c in by_format:
            continue
        med = c["medians"]
        lines.append(
            f"| {c['name']} | {c['runs_count']} | {fmt_s(med.get(IMGFMT))} | "
            f"{fmt_s(med.get(IM2REC))} | {fmt_s(med.get(CAT))} | "
            f"{fmt_x(c['speedup'])} | {fmt_x(c['cat_ratio'])} | "
            f"{c['target'] or '—'} | {met_text(c['met'])} |"
        )
    if by_format:
        formats = results["formats"]
        lines += [
            "",
            "JSON Lines against RecordIO: the same 2,000 ImageNet-like images packed with",
            f"`--pass-through` once as `.jsonl` ({formats['jsonl_mb']:.1f} MB: a JSON object a "
            "line, the image",
            f"in base64) and once as `.rec` ({formats['rec_mb']:.1f} MB); the same imgfmt "
            "command timed on each. The",
            "ratio is .jsonl time / .rec time (lower is better; 1: the format costs nothing).",
            "",
            "| case | runs | .jsonl s | .rec s | .jsonl/.rec | target | met? |",
            "|---|---:|---:|---:|---:|---|---|",
        ]
        for c in by_format:
            med = c["medians"]
            lines.append(
                f"| {c['name']} | {c['runs_count']} | {fmt_s(med.get(JSONL))} | "
                f"{fmt_s(med.get(REC))} | {fmt_x(c['rec_ratio'])} | {c['target'] or '—'} | "
                f"{met_text(c['met'])} |"
            )
    checks = results["checks"]
    lines += ["", "Notes:", ""]
    lines += [f"- {c['name'].split('.')[0]}: {c['note']}." for c in cases if c["note"]]
    lines += [
        f"- Same output: the lists of case 1 are {checks['lst_identical']}; the pass-through "
        f"`.rec` of case 2 is {checks['pt_rec_identical']} to im2rec's. Resized records "
        "differ (Pillow vs OpenCV resampling and encoder), so they are not compared.",
        "- The spread of every run is in `bench-data/results.json`.",
        "",
        "## Peak memory of pack",
        "",
        f"`pack {' '.join(RESIZE_ARGS)}`, the same 2,000 ImageNet-like images, listed once and "
        f"{RSS_LIST_COPIES} times (a `.lst` of 20,000 lines, indices 0..19,999, same files "
        f"again). The process tree (main process and workers) is sampled every "
        f"{RSS_POLL_SECONDS * 1000:.0f} ms from `/proc` (PSS every "
        f"{RSS_POLL_SECONDS * PSS_EVERY * 1000:.0f} ms). Tree RSS sums every process's RSS "
        "(pages shared by forked workers count once per process: an upper bound); tree PSS "
        "shares them out (the real footprint); max process is the largest single process "
        "(what `ru_maxrss` would report). One run each.",
        "",
        "| run | images | tree RSS MB | tree PSS MB | max process RSS MB | processes | wall s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for m in memory:
        lines.append(
            f"| {m['label']} | {m['images']:,} | {m['tree_rss_mb']:.0f} | {m['tree_pss_mb']:.0f} "
            f"| {m['max_process_rss_mb']:.0f} | {m['max_processes']} | {m['seconds']:.1f} |"
        )
    lines += [
        "",
        f"Target: peak under 200 MB and within 10% between 2,000 and 20,000 images. Tree RSS "
        f"{rss_target['rss_2k']:.0f} -> {rss_target['rss_20k']:.0f} MB "
        f"({rss_target['growth_pct']:+.1f}%): under 200 MB **{rss_target['under']}**, "
        f"within 10% **{rss_target['stable']}**.",
        "",
        "## Start-up",
        "",
        "| command | runs | median s | target | met? |",
        "|---|---:|---:|---|---|",
        f"| `imgfmt --help` | {STARTUP_RUNS} | {startup['imgfmt_help']:.3f} | < 0.25 s | "
        f"{met_text(startup['imgfmt_help'] < 0.25)} |",
        f"| `python -c pass` (interpreter floor) | {STARTUP_RUNS} | "
        f"{startup['python_floor']:.3f} | — | — |",
        f"| `im2rec.py --help` (imports mxnet) | {IM2REC_STARTUP_RUNS} | "
        f"{startup['im2rec_help']:.3f} | — | — |",
        "",
        "## Reproduce",
        "",
        "```sh",
        "make bench   # builds both venvs if needed, the corpora once (cached in bench-data/),",
        "             # runs everything, rewrites BENCHMARKS.md, raw numbers in "
        "bench-data/results.json",
        "```",
        "",
        NOTES_MARKER,
    ]
    kept = ""
    if old_report and NOTES_MARKER in old_report:
        kept = old_report.split(NOTES_MARKER, 1)[1]
    return "\n".join(lines) + (kept if kept.strip() else "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mxnet-python", required=True, help="python of the mxnet 1.9.1 venv")
    parser.add_argument("--imgfmt", default=str(Path(sys.executable).parent / "imgfmt"))
    parser.add_argument("--data", type=Path, default=REPO / "bench-data")
    parser.add_argument("--report", type=Path, default=REPO / "BENCHMARKS.md")
    parser.add_argument("--repeats", type=int, default=5, help="runs of the quick cases")
    parser.add_argument(
        "--slow-repeats",
        type=int,
        default=5,
        help="runs of the resize packs and the 20,000-image pack",
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    if min(args.repeats, args.slow_repeats) < 1:
        parser.error("--repeats and --slow-repeats must be at least 1")

    started = time.perf_counter()
    data: Path = args.data.resolve()
    data.mkdir(parents=True, exist_ok=True)
    tools = Tools(
        imgfmt=args.imgfmt,
        mxnet_python=str(Path(args.mxnet_python).absolute()),
        im2rec=find_im2rec(args.mxnet_python),
        workers=args.workers,
    )
    corpora = [ensure_corpus(c, data, args.workers) for c in (IMAGENET, PHOTOS)]
    run_dir = data / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    cases, paths = build_cases(tools, data, run_dir, args.repeats, args.slow_repeats)

    print("bench: warming caches (untimed)", flush=True)
    warm_up(tools, data)
    timed = time_cases(cases)

    lstgen = paths["lstgen"]
    same_lst = (lstgen / IMGFMT / "imagenet.lst").read_bytes() == (
        lstgen / IM2REC / "imagenet.lst"
    ).read_bytes()
    same_rec = sha256(paths["ours"] / "pt.rec") == sha256(paths["pt_im2rec"])
    checks = {
        "lst_identical": "byte-identical" if same_lst else "DIFFERENT",
        "pt_rec_identical": "byte-identical" if same_rec else "DIFFERENT",
    }
    formats = {
        "jsonl_mb": paths["packed_jsonl"].stat().st_size / 1e6,
        "rec_mb": paths["packed"].stat().st_size / 1e6,
    }

    print("bench: peak memory of pack (2,000 and 20,000 images)", flush=True)
    imagenet = data / IMAGENET.name
    rss_dir = run_dir / "rss"
    rss_dir.mkdir()
    lst_2k, lst_20k = paths["lists"] / "imagenet.lst", paths["lst_20k"]
    count_20k = len(lst_paths(lst_20k, imagenet))
    memory = []
    for label, lst, count in (
        ("imgfmt, 2,000", lst_2k, 2000),
        ("imgfmt, 20,000", lst_20k, count_20k),
    ):
        cmd = tools.pack(lst, rss_dir / f"{count}.rec", imagenet, *RESIZE_ARGS)
        memory.append({**asdict(peak_memory(label, cmd)), "images": count})
    im2rec_rss = rss_dir / IM2REC
    im2rec_rss.mkdir()
    shutil.copy(lst_2k, im2rec_rss / "imagenet.lst")
    cmd = tools.im2rec_pack(im2rec_rss / "imagenet", imagenet, *RESIZE_ARGS)
    memory.append({**asdict(peak_memory("im2rec, 2,000 (for reference)", cmd)), "images": 2000})
    rss_2k, rss_20k = memory[0]["tree_rss_mb"], memory[1]["tree_rss_mb"]
    assert isinstance(rss_2k, float) and isinstance(rss_20k, float)
    growth = (rss_20k - rss_2k) / rss_2k * 100
    rss_target = {
        "rss_2k": rss_2k,
        "rss_20k": rss_20k,
        "growth_pct": growth,
        "under": "yes" if max(rss_2k, rss_20k) < 200 else "no",
        "stable": "yes" if abs(growth) <= 10 else "no",
    }

    print("bench: start-up", flush=True)
    python = str(Path(sys.executable).parent / "python")
    startup = {
        "imgfmt_help": median_run(tools.ours("--help"), STARTUP_RUNS)[0],
        "python_floor": median_run([python, "-c", "pass"], STARTUP_RUNS)[0],
        "im2rec_help": median_run(tools.theirs("--help"), IM2REC_STARTUP_RUNS)[0],
    }

    results: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine_info(tools),
        "corpora": corpora,
        "cases": [
            {
                "name": r.name,
                "runs": r.runs,
                "runs_count": max(len(v) for v in r.runs.values()),
                "medians": {tool: r.median(tool) for tool in r.runs},
                "speedup": r.speedup(),
                "cat_ratio": r.cat_ratio(),
                "rec_ratio": r.rec_ratio(),
                "target": r.target,
                "met": r.met,
                "note": r.note,
            }
            for r in timed
        ],
        "checks": checks,
        "formats": formats,
        "memory": memory,
        "rss_target": rss_target,
        "startup": startup,
        "total_seconds": time.perf_counter() - started,
    }
    (data / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    old = args.report.read_text(encoding="utf-8") if args.report.exists() else None
    args.report.write_text(render(results, old), encoding="utf-8")
    print(
        f"bench: wrote {args.report} and {data / 'results.json'} "
        f"in {results['total_seconds']:.0f} s"
    )
    for r in timed:
        ratios = (
            f".jsonl/.rec {fmt_x(r.rec_ratio())}"
            if JSONL in r.runs
            else f"speedup {fmt_x(r.speedup())}, imgfmt/cat {fmt_x(r.cat_ratio())}"
        )
        print(f"  {r.name}: {ratios}, target {r.target or '-'}: {met_text(r.met)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
