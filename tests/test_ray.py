"""The Ray engine and the Ray Data API, on a real local Ray cluster (2 CPUs) that the session
starts once: same bytes as the local engine, locally and on S3; nothing left behind when a
task fails (an upload refused, a worker killed); ``verify --engine ray``; and a dataset
round trip through Ray Data.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import leftovers, make_tree

from imgfmt.cli import cli
from imgfmt.errors import ImgfmtError
from imgfmt.formats.recordio import RecordIO
from imgfmt.images import ImageOptions

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_cluster(s3_server):
    """One local Ray cluster for these tests, stopped after them: a process with Ray running
    makes its decoder pools from a fork server, which tests elsewhere that patch decoders for
    forked workers must not meet. It starts after the S3 server has set the environment
    (credentials), which its worker processes inherit."""
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
    )
    try:
        yield ray
    finally:
        ray.shutdown()


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.output


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "photos", {"cat": 9, "dog": 8, "owl": 6})


@pytest.mark.parametrize("source", ["folder", "list"])
def test_ray_pack_is_byte_identical_to_local(
    ray_cluster, photos: Path, tmp_path: Path, source: str
) -> None:
    args = ["--shard-records", "4", "--resize", "32"]
    src = str(photos)
    if source == "list":
        assert run("lst-gen", str(photos), str(tmp_path / "all"), "--recursive")[0] == 0
        src = str(tmp_path / "all.lst")
        args += ["--root", str(photos)]
    for engine, workers in [("local", "2"), ("local", "1"), ("ray", "2")]:
        out = tmp_path / f"{engine}{workers}"
        out.mkdir()
        code, output = run("pack", src, str(out / "t.rec"), *args, "--engine", engine,
                           "-j", workers)  # fmt: skip
        assert code == 0, output
    local = files(tmp_path / "local2")
    assert len([n for n in local if n.endswith(".rec")]) == 6  # 23 images: 4,4,4,4,4,3
    assert "t.combined.idx" in local
    assert files(tmp_path / "local1") == local
    assert files(tmp_path / "ray2") == local


def test_ray_pack_on_s3_matches_local_and_leaves_no_upload(
    ray_cluster, s3, photos: Path, tmp_path: Path
) -> None:
    s3.upload_tree(photos, "photos")
    assert run("pack", str(photos), str(tmp_path / "t.rec"), "--shard-records", "5")[0] == 0
    code, output = run("--endpoint-url", s3.endpoint, "pack", s3.uri("photos"),
                       s3.uri("out/t.rec"), "--shard-records", "5", "--engine", "ray")  # fmt: skip
    assert code == 0, output
    local = files(tmp_path)
    assert s3.keys("out/") == [f"out/{name}" for name in local]
    for name, data in local.items():
        assert s3.get(f"out/{name}") == data, name
    assert s3.uploads() == []


def test_a_refused_upload_on_a_worker_leaves_nothing(ray_cluster, s3, photos: Path) -> None:
    s3.upload_tree(photos, "photos")
    s3.proxy.fail(99, method="PUT", match="t-00003-of-00005.rec", status=403)
    code, output = run("--endpoint-url", s3.endpoint, "pack", s3.uri("photos"),
                       s3.uri("out/t.rec"), "--shard-records", "5", "--engine", "ray")  # fmt: skip
    assert code == 1, output
    assert "t-00003-of-00005.rec: access denied" in output
    assert s3.keys("out/") == []
    assert s3.uploads() == []


def _parent_is_a_task(pid: str) -> bool:
    """A decoder process forked by a task shows the task's title too: not the one to kill
    (its crash costs one image, by design)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            parent = handle.read().rsplit(")", 1)[1].split()[1]
        with open(f"/proc/{parent}/cmdline", "rb") as handle:
            return handle.read().startswith(b"ray::")
    except (OSError, IndexError):
        return True


def _kill_a_shard_task(stop: threading.Event, killed: list[int]) -> None:
    """SIGKILL the first Ray worker process seen running a shard task."""
    while not stop.is_set():
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as handle:
                    command = handle.read()
            except OSError:
                continue
            if command.startswith(b"ray::pack_shard") and not _parent_is_a_task(pid):
                os.kill(int(pid), signal.SIGKILL)
                killed.append(int(pid))
                return
        time.sleep(0.01)


def test_a_killed_worker_leaves_nothing(ray_cluster, tmp_path: Path) -> None:
    from imgfmt.engines.ray import RayEngine
    from imgfmt.ops import pack

    photos = make_tree(tmp_path / "photos", {"a": 30, "b": 30}, size=(640, 480))
    out = tmp_path / "out"
    out.mkdir()
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_a_shard_task, args=(stop, killed))
    killer.start()
    try:
        with pytest.raises(ImgfmtError) as caught:
            pack.pack(str(photos), str(out / "t.rec"), shard_records=10,
                      options=ImageOptions(resize=400),
                      engine=RayEngine(max_retries=0))  # fmt: skip
    finally:
        stop.set()
        killer.join()
    assert killed, "no shard task was seen running"
    assert "its worker or node died" in str(caught.value)
    assert list(out.iterdir()) == []
    assert leftovers(out) == []


def test_verify_on_ray_reports_as_local_does(ray_cluster, photos: Path, tmp_path: Path) -> None:
    assert run("pack", str(photos), str(tmp_path / "t.rec"), "--shard-records", "5")[0] == 0
    shards = sorted(str(p) for p in tmp_path.glob("t-*.rec"))
    with open(shards[1], "r+b") as handle:  # damage one record head of shard 1
        handle.seek(0)
        handle.write(b"\0\0\0\0")
    with open(shards[3], "ab") as handle:
        handle.write(b"junk")
    reports = {}
    for engine in ("local", "ray"):
        code, output = run("verify", *shards, "--decode", "--json", "--engine", engine)
        assert code == 1, output
        reports[engine] = json.loads(output)
    assert reports["ray"] == reports["local"]
    # In file order: shard 1's bad head (and its index entry pointing at it), then shard 3.
    names = [Path(p["path"]).name for p in reports["ray"]["problems"]]
    assert names == ["t-00001-of-00005.rec", "t-00001-of-00005.idx", "t-00003-of-00005.rec"]


def test_read_recordio_gives_every_record(ray_cluster, photos: Path, tmp_path: Path) -> None:
    import imgfmt.ray

    assert run("pack", str(photos), str(tmp_path / "t.rec"), "--shard-records", "5")[0] == 0
    ours = []
    for shard in sorted(tmp_path.glob("t-*.rec")):
        ours += [(i.index, i.labels, i.image) for i in RecordIO().read(str(shard), print)]
    for blocks in (None, 12):  # one task a shard; shards cut at records through the .idx
        options = {} if blocks is None else {"override_num_blocks": blocks}
        rows = imgfmt.ray.read_recordio(str(tmp_path / "t.rec"), **options).take_all()
        got = sorted((r["id"], tuple(r["labels"]), r["image"]) for r in rows)
        assert got == sorted(ours)
        assert all(r["label"] == r["labels"][0] and r["path"] is None for r in rows)


def test_datasink_round_trip(ray_cluster, photos: Path, tmp_path: Path) -> None:
    """Rows read from shards, written back with the sink: the same records, named and indexed
    as pack names them, with a combined index; our reader and verify agree."""
    import imgfmt.ray

    assert run("pack", str(photos), str(tmp_path / "t.rec"), "--shard-records", "5")[0] == 0
    out = tmp_path / "out"
    out.mkdir()
    ds = imgfmt.ray.read_recordio(str(tmp_path / "t.rec")).repartition(1)
    sink = imgfmt.ray.RecordIODatasink(str(out / "w.rec"), records_per_shard=5)
    ds.write_datasink(sink)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [f"w-0000{k}-of-00005.{ext}" for k in range(5) for ext in ("rec", "idx")]
        + ["w.combined.idx"]
    )
    original = b"".join(p.read_bytes() for p in sorted(tmp_path.glob("t-*.rec")))
    assert b"".join(p.read_bytes() for p in sorted(out.glob("w-*.rec"))) == original
    assert (out / "w.combined.idx").read_bytes() == (tmp_path / "t.combined.idx").read_bytes()
    code, output = run("verify", *sorted(str(p) for p in out.glob("w-*.rec")))
    assert code == 0, output


def test_a_failing_sink_publishes_nothing(ray_cluster, tmp_path: Path) -> None:
    import imgfmt.ray

    out = tmp_path / "out"
    out.mkdir()
    rows = [{"image": b"\xff\xd8 not really", "label": 1.0}] * 8 + [{"label": 2.0}]
    sink = imgfmt.ray.RecordIODatasink(str(out / "w.rec"), records_per_shard=2)
    with pytest.raises(Exception, match="needs an `image` column"):
        ray.data.from_items(rows).repartition(3).write_datasink(sink)
    assert list(out.iterdir()) == []


def test_a_local_pack_inside_a_ray_driver_leaves_ray_working(
    ray_cluster, photos: Path, tmp_path: Path
) -> None:
    """Decoder processes are not forked from a process that runs Ray: its gRPC threads do
    not survive a fork, and Ray calls then hung (here: the third read after local packs)."""
    import imgfmt.ray
    from imgfmt.engines import local

    assert local._start_method() == "forkserver"
    for round_ in range(3):
        out = tmp_path / f"r{round_}.rec"
        assert run("pack", str(photos), str(out), "--shard-records", "5", "-j", "2")[0] == 0
        for _ in range(2):
            assert len(imgfmt.ray.read_recordio(str(out)).take_all()) == 23
