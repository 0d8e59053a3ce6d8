"""Time imgfmt's S3 writes and reads against the AWS CLI's `aws s3 cp` of the same bytes.

    python scripts/bench_s3.py [--data bench-data] [--aws .venv-bench-s3/bin/aws]
                               [--repeats 3] [--bandwidth-mb 10] [--latency-ms 30]
                               [--only writes|reads]

S3 is modelled locally: moto's S3 server behind the proxy of ``tests/s3_server.py``, which
caps each connection's bandwidth (default 10 MB/s, each way) and holds every request for a
latency (default 30 ms), as one TCP connection to real S3 gives tens of MB/s and a request
costs a round trip. Over such a link an upload's speed comes from parallel connections.

Timed, as whole processes (start-up included), in each repeat in rotating order:

- ``imgfmt pack --pass-through`` of the ImageNet-like corpus (``DATA/imagenet``, made by
  ``make bench``; listed by ``imgfmt lst-gen`` first) to ``s3://bench/x.rec``, with one part
  in flight (serial) and with 10 (imgfmt's default, as the AWS CLI's);
- ``aws s3 cp`` (the AWS CLI v1 from PyPI, in its own venv: ``pip install awscli``) of the
  same .rec, packed locally beforehand, through the same proxy with its defaults (8 MiB parts,
  10 requests at once).

Reads (``--only reads``; both sets run by default), with the corpus and the .rec (and its
.idx) put in the bucket beforehand, uncapped:

- ``imgfmt pack s3://bench/imagenet LOCAL.rec --pass-through`` (lists the prefix, fetches the
  2,000 images) against ``aws s3 cp --recursive`` of the prefix to a local folder;
- ``imgfmt verify s3://bench/r.rec`` and ``imgfmt unpack s3://bench/r.rec LOCAL_DIR``
  against ``aws s3 cp`` of the .rec to a local file.

The medians go out as markdown tables, printed and written into the report (default
BENCHMARKS.md) between the markers ``REPORT_START`` and ``REPORT_END``, replacing what was
there; with ``--only``, the other set's section of the previous block is kept as it was (each
section carries its own date and settings). Without the markers, the block goes after the
report's "## S3 reads" section (else at its end). ``--no-report`` only prints. The AWS CLI
gets its endpoint by ``--endpoint-url`` and fake credentials from the environment, as the
tests' ``conftest.py`` sets them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PYTHON = sys.executable

#: imgfmt with one setting of ``imgfmt.s3`` changed (there is no command-line flag for it).
IMGFMT_WITH_CONCURRENCY = (
    "import sys; from imgfmt import s3; s3.configure(max_concurrency=int(sys.argv.pop(1))); "
    "from imgfmt.cli import main; sys.argv[0] = 'imgfmt'; main()"
)
BUCKET = "bench"
MB = 1_000_000
#: The generated block of the report lies between these lines (both kept).
REPORT_START = "<!-- bench_s3.py: generated, start -->"
REPORT_END = "<!-- bench_s3.py: generated, end -->"
#: Each set's section of the block starts with one of these (the set's name in bold).
SECTION = {"writes": "**S3 writes**", "reads": "**S3 reads**"}
#: imgfmt's time over the AWS CLI's for the same bytes: at most this.
AWS_TARGET = 1.3
#: Serial (1 part in flight) pack over concurrent (10): at least this.
CONCURRENCY_TARGET = 4.0

ENV = {
    **{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    "AWS_ACCESS_KEY_ID": "AKIAIMGFMTBENCHKEY00",
    "AWS_SECRET_ACCESS_KEY": "imgfmt-bench-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
    ENV.pop(name, None)


def load_s3_server() -> ModuleType:
    spec = importlib.util.spec_from_file_location("s3_server", REPO / "tests" / "s3_server.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["s3_server"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr.decode()[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=REPO / "bench-data")
    parser.add_argument("--aws", default=str(REPO / ".venv-bench-s3" / "bin" / "aws"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--bandwidth-mb", type=float, default=10.0, help="MB/s per connection")
    parser.add_argument("--latency-ms", type=float, default=30.0, help="per request")
    parser.add_argument("--only", choices=("writes", "reads"), help="run one set of cases")
    parser.add_argument(
        "--report",
        type=Path,
        default=REPO / "BENCHMARKS.md",
        help="markdown file whose generated S3 block is replaced (default: BENCHMARKS.md)",
    )
    parser.add_argument("--no-report", action="store_true", help="only print the tables")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    corpus = args.data / "imagenet"
    if not corpus.is_dir():
        sys.exit(f"{corpus} is missing: `make bench` makes it (scripts/make_samples.py)")
    if not Path(args.aws).exists():
        sys.exit(
            f"{args.aws} is missing: python -m venv .venv-bench-s3 && "
            ".venv-bench-s3/bin/pip install awscli"
        )
    version = subprocess.run([args.aws, "--version"], env=ENV, capture_output=True, text=True)
    # "aws-cli/1.46.3 Python/3.11.7 ..." (v1 printed it on stderr once, so read both)
    found = re.search(r"aws-cli/(\S+)", version.stdout + version.stderr)
    args.aws_version = found.group(1) if found else "unknown"
    args.date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    os.environ.update(ENV)  # the bucket is made with boto3 from this process
    s3_server = load_s3_server()
    import boto3

    moto, port = s3_server.start_moto()
    proxy = s3_server.Proxy(port, bandwidth=args.bandwidth_mb * MB, latency=args.latency_ms / 1000)
    quiet_dropped_connections(proxy)
    direct = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}")  # setup: not capped
    direct.create_bucket(Bucket=BUCKET)
    imgfmt = [PYTHON, "-m", "imgfmt"]
    sections: dict[str, str] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            subprocess.run(
                [*imgfmt, "-q", "lst-gen", str(corpus), str(work / "imagenet"), "--recursive"],
                env=ENV,
                check=True,
            )
            lst = work / "imagenet.lst"
            local_rec = work / "local.rec"
            subprocess.run(
                [
                    *imgfmt,
                    "-q",
                    "--no-progress",
                    "pack",
                    str(lst),
                    str(local_rec),
                    "--root",
                    str(corpus),
                    "--pass-through",
                ],
                env=ENV,
                check=True,
            )
            if args.only != "reads":
                sections["writes"] = bench_writes(args, proxy.url, direct, lst, corpus, local_rec)
                print(sections["writes"])
            if args.only != "writes":
                sections["reads"] = bench_reads(args, proxy.url, direct, corpus, local_rec, work)
                print(sections["reads"])
    finally:
        proxy.close()
        assert moto.stdin is not None
        moto.stdin.close()
        moto.kill()
        moto.wait(timeout=10)
    if not args.no_report:
        write_report(args.report, sections)
        print(f"bench_s3: wrote the S3 block of {args.report}", file=sys.stderr)


def quiet_dropped_connections(proxy: Any) -> None:
    """No traceback when a client drops a connection the proxy is still answering on (imgfmt's
    reader closes its first GET once the ranged GETs take over); other errors still print."""
    server = proxy._server
    default = server.handle_error

    def handle_error(request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            default(request, client_address)

    server.handle_error = handle_error


def paragraph(*parts: str) -> str:
    """``parts`` as one markdown paragraph, wrapped at 100 columns as the rest of the report."""
    return textwrap.fill(" ".join(parts), 100, break_long_words=False, break_on_hyphens=False)


def split_sections(block: str) -> dict[str, str]:
    """The sections of a generated block, by set ("writes", "reads")."""
    starts = sorted(
        (match.start(), name)
        for name, head in SECTION.items()
        for match in re.finditer(rf"^{re.escape(head)}", block, flags=re.MULTILINE)
    )
    return {
        name: block[start : (starts[n + 1][0] if n + 1 < len(starts) else len(block))].strip()
        for n, (start, name) in enumerate(starts)
    }


def write_report(report: Path, sections: dict[str, str]) -> None:
    """Replace the generated block of ``report`` by ``sections``, keeping the previous
    section of a set that did not run (``--only``)."""
    text = report.read_text(encoding="utf-8") if report.exists() else ""
    start, end = text.find(REPORT_START), text.find(REPORT_END)
    if start != -1 and end > start:
        old = split_sections(text[start + len(REPORT_START) : end])
        before, after = text[:start], text[end + len(REPORT_END) :]
    else:
        old = {}
        # After the hand-written "## S3 reads" section (up to the next "## " heading), else
        # at the end.
        cut = len(text)
        heading = re.search(r"^## S3 reads\b", text, flags=re.MULTILINE)
        following = (
            re.compile(r"^## ", re.MULTILINE).search(text, heading.end()) if heading else None
        )
        if following:
            cut = following.start()
        before = text[:cut].rstrip("\n")
        before = before + "\n\n" if before else ""
        rest = text[cut:].lstrip("\n")
        after = "\n\n" + rest if rest else "\n"
    parts = [(sections.get(name) or old.get(name) or "").strip() for name in SECTION]
    body = "\n\n".join(part for part in parts if part)
    report.write_text(f"{before}{REPORT_START}\n{body}\n{REPORT_END}{after}", encoding="utf-8")


def setting(args: argparse.Namespace) -> str:
    """The settings a section was measured with (its date is in its first line)."""
    return (
        f"Proxy: {args.bandwidth_mb:g} MB/s per connection each way, {args.latency_ms:g} ms per "
        f"request; AWS CLI {args.aws_version}; {os.cpu_count()} cores, shared with moto and the "
        f"proxy; whole processes, start-up included; median of {args.repeats} "
        f"run{'s' if args.repeats != 1 else ''}, order rotating."
    )


def met_text(met: bool) -> str:
    return "**yes**" if met else "**no**"


def warm(cmds: list[list[str]], aws: str) -> None:
    """Run each program once first (imports, bytecode, page cache)."""
    for cmd in cmds:
        program = cmd[:3] if cmd[1:2] == ["-m"] else cmd[:4]  # -m imgfmt, or -c CODE ARG
        warming = [*program, "--help"] if cmd[0] == PYTHON else [aws, "--version"]
        subprocess.run(warming, env=ENV, stdout=subprocess.DEVNULL, check=True)


def bench_writes(
    args: argparse.Namespace, url: str, direct: Any, lst: Path, corpus: Path, local_rec: Path
) -> str:
    """imgfmt pack to S3 (1 part in flight, 10) against aws s3 cp of the same .rec; return
    the section of the report."""
    size = local_rec.stat().st_size

    def pack(concurrency: int) -> list[str]:
        return [
            PYTHON,
            "-c",
            IMGFMT_WITH_CONCURRENCY,
            str(concurrency),
            "--endpoint-url",
            url,
            "-q",
            "--no-progress",
            "pack",
            str(lst),
            f"s3://{BUCKET}/x.rec",
            "--root",
            str(corpus),
            "--pass-through",
        ]

    cases = {
        "imgfmt pack, 1 part at a time": (pack(1), "x.rec"),
        "imgfmt pack, 10 parts at a time (default)": (pack(10), "x.rec"),
        "aws s3 cp of the same .rec (defaults: 8 MiB parts, 10 at a time)": (
            [
                args.aws,
                "--endpoint-url",
                url,
                "--only-show-errors",
                "s3",
                "cp",
                str(local_rec),
                f"s3://{BUCKET}/y.rec",
            ],
            "y.rec",
        ),
    }
    warm([cmd for cmd, _key in cases.values()], args.aws)
    times: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for repeat in range(args.repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            cmd, key = cases[name]
            times[name].append(timed(cmd))
            stored = direct.head_object(Bucket=BUCKET, Key=key)["ContentLength"]
            assert stored == size, (name, stored, size)
            for leftover in direct.list_objects_v2(Bucket=BUCKET).get("Contents", ()):
                direct.delete_object(Bucket=BUCKET, Key=leftover["Key"])
            print(f"  {name}: {times[name][-1]:.2f} s", file=sys.stderr)
    return writes_section(times, names, size, args)


def bench_reads(
    args: argparse.Namespace, url: str, direct: Any, corpus: Path, local_rec: Path, work: Path
) -> str:
    """imgfmt pack from an S3 prefix, verify and unpack of a .rec on S3, against aws s3 cp;
    return the section of the report."""
    files = sorted(p for p in corpus.rglob("*") if p.is_file())
    with ThreadPoolExecutor(16) as pool:  # setup, uncapped
        list(
            pool.map(
                lambda p: direct.put_object(
                    Bucket=BUCKET,
                    Key=f"imagenet/{p.relative_to(corpus).as_posix()}",
                    Body=p.read_bytes(),
                ),
                files,
            )
        )
    direct.put_object(Bucket=BUCKET, Key="r.rec", Body=local_rec.read_bytes())
    direct.put_object(Bucket=BUCKET, Key="r.idx", Body=local_rec.with_suffix(".idx").read_bytes())
    size = local_rec.stat().st_size
    corpus_size = sum(p.stat().st_size for p in files)
    out = work / "out"
    imgfmt = [PYTHON, "-m", "imgfmt", "--endpoint-url", url, "-q", "--no-progress"]
    aws = [args.aws, "--endpoint-url", url, "--only-show-errors", "s3", "cp"]
    prefix = f"s3://{BUCKET}/imagenet"
    rec = f"s3://{BUCKET}/r.rec"
    cases: dict[str, list[str]] = {
        "imgfmt pack s3://…/imagenet (2,000 objects) --pass-through": [
            *imgfmt,
            "pack",
            prefix,
            str(out / "p.rec"),
            "--pass-through",
        ],
        "aws s3 cp --recursive of the prefix": [*aws, "--recursive", prefix, str(out / "x")],
        "imgfmt verify s3://…/r.rec": [*imgfmt, "verify", rec],
        "imgfmt unpack s3://…/r.rec": [*imgfmt, "unpack", rec, str(out / "u")],
        "aws s3 cp of the .rec": [*aws, rec, str(out / "r.rec")],
    }
    warm(list(cases.values()), args.aws)
    times: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for repeat in range(args.repeats):
        for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            times[name].append(timed(cases[name]))
            print(f"  {name}: {times[name][-1]:.2f} s", file=sys.stderr)
    shutil.rmtree(out, ignore_errors=True)
    median = {name: statistics.median(values) for name, values in times.items()}
    lines = [
        paragraph(
            f"{SECTION['reads']} ({args.date}, `scripts/bench_s3.py`): {len(files):,} objects "
            f"({corpus_size / MB:.1f} MB) under `{prefix}/` and their .rec ({size / MB:.1f} MB, "
            f"with its .idx) at `{rec}`, put there beforehand (uncapped); each imgfmt command "
            "against `aws s3 cp` of the same objects (its defaults: 8 MiB ranges, 10 at once).",
            setting(args),
        ),
        "",
        "| run | s (median) | runs (s) | ratio to its aws s3 cp | target | met? |",
        "|---|---:|---|---:|---|---|",
    ]
    baseline = {
        names[0]: names[1],
        names[1]: names[1],
        names[2]: names[4],
        names[3]: names[4],
        names[4]: names[4],
    }
    for name in names:
        runs = ", ".join(f"{t:.2f}" for t in times[name])
        ratio = median[name] / median[baseline[name]]
        if baseline[name] == name:
            target, met = "baseline", "—"
        else:
            target, met = f"<= {AWS_TARGET:g}x", met_text(ratio <= AWS_TARGET)
        lines.append(f"| {name} | {median[name]:.2f} | {runs} | {ratio:.2f}x | {target} | {met} |")
    return "\n".join(lines) + "\n"


def writes_section(
    times: dict[str, list[float]],
    names: list[str],
    size: int,
    args: argparse.Namespace,
) -> str:
    median = {name: statistics.median(values) for name, values in times.items()}
    serial, concurrent, aws = (median[name] for name in names)
    jpegs = len(list((args.data / "imagenet").rglob("*.jpg")))
    lines = [
        paragraph(
            f"{SECTION['writes']} ({args.date}, `scripts/bench_s3.py`): `imgfmt pack "
            f"--pass-through` of the ImageNet-like list ({jpegs:,} JPEGs, a .rec of "
            f"{size / MB:.1f} MB) to `s3://{BUCKET}/x.rec`, with 1 part in flight and with 10, "
            "against `aws s3 cp` of the same .rec, packed locally first (its defaults: 8 MiB "
            "parts, 10 at once).",
            setting(args),
        ),
        "",
        "| run | s (median) | runs (s) | MB/s | ratio to aws s3 cp | target | met? |",
        "|---|---:|---|---:|---:|---|---|",
    ]
    targets = [
        (
            f"1 part / 10 parts >= {CONCURRENCY_TARGET:g}x (here {serial / concurrent:.2f}x)",
            met_text(serial / concurrent >= CONCURRENCY_TARGET),
        ),
        (f"<= {AWS_TARGET:g}x", met_text(concurrent / aws <= AWS_TARGET)),
        ("baseline", "—"),
    ]
    for name, (target, met) in zip(names, targets):
        runs = ", ".join(f"{t:.2f}" for t in times[name])
        lines.append(
            f"| {name} | {median[name]:.2f} | {runs} | {size / MB / median[name]:.1f} | "
            f"{median[name] / aws:.2f}x | {target} | {met} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
