"""What goes with every S3 request, as buckets with policies require: server-side
encryption, storage class and canned ACL on every new object, requester pays on every
request, and a CRC32 content checksum on every upload.

Against the real HTTP S3 of ``tests/s3_server.py`` (moto behind a recording proxy): each
test reads the headers the proxy saw on each request, and asks moto (through the fixture's
direct client) what it stored. moto keeps whatever checksum an upload claims; the proxy
checks it as S3 does (``400 BadDigest``), so a body damaged on its way is refused here as
it would be there.
"""

from __future__ import annotations

import base64
import os
import xml.etree.ElementTree as ET
import zlib
from pathlib import Path

import pytest
from helpers import JPEG_MAGIC, make_tree
from helpers import only_error_line as error_line
from helpers import run_s3 as run
from s3_server import Seen

from imgfmt import s3 as s3_module
from imgfmt.errors import StorageError, UsageError

KMS_KEY = "arn:aws:kms:us-east-1:123456789012:key/imgfmt-test-key"
MiB = 1 << 20
PART = 5 * MiB  # the s3 fixture's part size

#: The request headers of the options.
SSE = "x-amz-server-side-encryption"
KMS_KEY_ID = "x-amz-server-side-encryption-aws-kms-key-id"
STORAGE_CLASS = "x-amz-storage-class"
ACL = "x-amz-acl"
PAYER = "x-amz-request-payer"
#: The checksum headers: the algorithm of an object to be (CreateMultipartUpload,
#: CopyObject: S3 computes it), and the checksum of a body sent (PutObject, UploadPart).
CHECKSUM_ALGORITHM = "x-amz-checksum-algorithm"
SDK_CHECKSUM_ALGORITHM = "x-amz-sdk-checksum-algorithm"
CRC32 = "x-amz-checksum-crc32"

#: Requests that make an object, and so carry its encryption, storage class and ACL.
NEW_OBJECT = {"PutObject", "CreateMultipartUpload", "CopyObject"}


def crc32(data: bytes) -> str:
    """A CRC32 as S3 writes it: the 4 big-endian bytes, base64."""
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def blobs(folder: Path, count: int, size: int) -> Path:
    """``count`` JPEG-looking files of about ``size`` random bytes in ``folder/a`` (what
    pass-through packs as they are: a .rec of any size, quickly)."""
    (folder / "a").mkdir(parents=True)
    for i in range(count):
        (folder / "a" / f"{i}.jpg").write_bytes(JPEG_MAGIC + os.urandom(size))
    return folder


def operation(seen: Seen) -> str:
    """The S3 API operation of a request."""
    query, method = seen.query, seen.method
    copy = seen.header("x-amz-copy-source") is not None
    if method == "POST":
        return "CompleteMultipartUpload" if "uploadId=" in query else "CreateMultipartUpload"
    if method == "PUT":
        if "partNumber=" in query:
            return "UploadPartCopy" if copy else "UploadPart"
        return "CopyObject" if copy else "PutObject"
    if method == "DELETE":
        return "AbortMultipartUpload" if "uploadId=" in query else "DeleteObject"
    if method == "HEAD":
        return "HeadBucket" if "/" not in seen.path.strip("/") else "HeadObject"
    if "list-type=2" in query:
        return "ListObjectsV2"
    return "ListMultipartUploads" if "uploads" in query else "GetObject"


def requests(s3, *names: str) -> list[Seen]:
    return [seen for seen in s3.proxy.requests if operation(seen) in names]


def key_of(s3, seen: Seen) -> str:
    return seen.path.split(f"/{s3.bucket}/", 1)[1]


def assert_new_objects_carry(s3, expected: dict[str, str | None]) -> list[Seen]:
    """Every request that made an object carried ``expected`` headers (None: not sent),
    and its checksum: the CRC32 of the body of a PutObject, the algorithm CRC32 for S3 to
    compute otherwise."""
    made = requests(s3, *NEW_OBJECT)
    assert made
    for seen in made:
        where = (operation(seen), seen.path)
        assert {name: seen.header(name) for name in expected} == expected, where
        if operation(seen) == "PutObject":
            assert seen.header(SDK_CHECKSUM_ALGORITHM) == "CRC32", where
            assert seen.header(CRC32) is not None, where
        else:
            assert seen.header(CHECKSUM_ALGORITHM) == "CRC32", where
    return made


def assert_every_request_pays(s3) -> None:
    """``x-amz-request-payer`` on every request (HeadBucket included), once."""
    assert s3.proxy.requests
    for seen in s3.proxy.requests:
        sent = [value for name, value in seen.headers if name == PAYER]
        assert sent == ["requester"], (operation(seen), seen.path, seen.query)


def assert_parts_have_checksums(s3, key: str, data: bytes) -> None:
    """Every UploadPart of ``key`` sent the CRC32 of its slice of ``data`` (and no object
    header, which S3 refuses there), and the completion listed each part's checksum."""
    parts = [p for p in requests(s3, "UploadPart") if p.path.endswith(f"/{key}")]
    # Parts go up concurrently: they reach the server in any order.
    parts.sort(key=lambda p: int(p.query.split("partNumber=")[1].split("&")[0]))
    assert len(parts) == -(-len(data) // PART) > 1
    sent = []
    for number, part in enumerate(parts):
        assert part.header(SDK_CHECKSUM_ALGORITHM) == "CRC32"
        assert part.header(CRC32) == crc32(data[number * PART : (number + 1) * PART])
        assert part.header(SSE) is part.header(STORAGE_CLASS) is part.header(ACL) is None
        sent.append(part.header(CRC32))
    (complete,) = [c for c in requests(s3, "CompleteMultipartUpload") if c.path.endswith(key)]
    assert complete.body is not None
    listed = [
        {child.tag.rsplit("}", 1)[-1]: child.text for child in element}
        for element in ET.fromstring(complete.body)
    ]
    assert [(p["PartNumber"], p["ChecksumCRC32"]) for p in listed] == [
        (str(number), crc) for number, crc in enumerate(sent, 1)
    ]


# --------------------------------------------------------------------------- writes


def test_small_pack_puts_objects_with_sse_class_acl_and_their_crc32(s3, tmp_path: Path) -> None:
    photos = make_tree(tmp_path / "photos", {"cat": 3, "dog": 2}, size=(16, 12))
    run(s3, "--sse", "AES256", "--storage-class", "STANDARD_IA", "--acl",
        "bucket-owner-full-control", "pack", str(photos), s3.uri("out/small.rec"),
        "--pass-through", "--no-shuffle")  # fmt: skip
    made = assert_new_objects_carry(
        s3,
        {SSE: "AES256", KMS_KEY_ID: None, STORAGE_CLASS: "STANDARD_IA",
         ACL: "bucket-owner-full-control", PAYER: None},
    )  # fmt: skip
    assert {operation(seen) for seen in made} == {"PutObject"}
    assert sorted(key_of(s3, seen) for seen in made) == s3.keys("out/") == [
        "out/small.classes.tsv", "out/small.idx", "out/small.lst", "out/small.rec"
    ]  # fmt: skip
    for seen in made:  # the checksum of the very bytes stored
        assert seen.header(CRC32) == crc32(s3.get(key_of(s3, seen)))
        head = s3.client.head_object(Bucket=s3.bucket, Key=key_of(s3, seen))
        assert (head["ServerSideEncryption"], head["StorageClass"]) == ("AES256", "STANDARD_IA")


def test_multipart_pack_with_kms_options_after_the_command(s3, tmp_path: Path) -> None:
    source = blobs(tmp_path / "blobs", 3, 3 * MiB)
    run(s3, "pack", str(source), str(tmp_path / "big.rec"), "--pass-through", "--no-shuffle")
    data = (tmp_path / "big.rec").read_bytes()
    s3.proxy.reset()
    # The key before --sse, both after the command: checked as a pair all the same.
    run(s3, "pack", str(source), s3.uri("big.rec"), "--pass-through", "--no-shuffle",
        "--sse-kms-key-id", KMS_KEY, "--sse", "aws:kms", "--storage-class",
        "INTELLIGENT_TIERING", "--acl", "bucket-owner-full-control")  # fmt: skip
    assert s3.get("big.rec") == data
    made = assert_new_objects_carry(
        s3,
        {SSE: "aws:kms", KMS_KEY_ID: KMS_KEY, STORAGE_CLASS: "INTELLIGENT_TIERING",
         ACL: "bucket-owner-full-control"},
    )  # fmt: skip
    assert sorted((operation(seen), key_of(s3, seen)) for seen in made) == [
        ("CreateMultipartUpload", "big.rec"), ("PutObject", "big.classes.tsv"),
        ("PutObject", "big.idx"), ("PutObject", "big.lst"),
    ]  # fmt: skip
    assert_parts_have_checksums(s3, "big.rec", data)
    head = s3.client.head_object(Bucket=s3.bucket, Key="big.rec", ChecksumMode="ENABLED")
    assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == KMS_KEY
    assert head["StorageClass"] == "INTELLIGENT_TIERING"
    assert head["ChecksumCRC32"]  # S3 keeps the object's checksum
    assert s3.uploads() == []


def test_shards_renamed_by_copy_keep_every_setting_and_every_request_pays(
    s3, tmp_path: Path
) -> None:
    # --shard-size: a shard's final name (OUT-00000-of-000NN) is known only at the end; it
    # is written under a provisional one and renamed by CopyObject.
    source = blobs(tmp_path / "blobs", 6, 1000)
    run(s3, "--sse-kms-key-id", KMS_KEY, "--request-payer", "requester", "pack", str(source),
        s3.uri("out/x.rec"), "--pass-through", "--no-shuffle", "--shard-size", "3KB", "--sse",
        "aws:kms", "--storage-class", "GLACIER_IR", "--acl", "bucket-owner-full-control",
    )  # fmt: skip
    made = assert_new_objects_carry(
        s3,
        {SSE: "aws:kms", KMS_KEY_ID: KMS_KEY, STORAGE_CLASS: "GLACIER_IR",
         ACL: "bucket-owner-full-control", PAYER: "requester"},
    )  # fmt: skip
    copies = sorted(key_of(s3, seen) for seen in made if operation(seen) == "CopyObject")
    assert copies == [f"out/x-{n:05d}-of-00003.{ext}" for n in range(3) for ext in ("idx", "rec")]
    assert_every_request_pays(s3)
    assert s3.keys("out/") == sorted(
        [*copies, "out/x.classes.tsv", "out/x.combined.idx", "out/x.lst"]
    )  # the provisional names are gone
    for key in s3.keys("out/"):
        head = s3.client.head_object(Bucket=s3.bucket, Key=key)
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"], head["StorageClass"]) == (
            "aws:kms", KMS_KEY, "GLACIER_IR"
        ), key  # fmt: skip


def test_shards_staged_by_worker_processes_carry_the_settings(s3, tmp_path: Path) -> None:
    # --shard-records: each worker uploads its shards as multipart uploads to their final
    # names, and the run completes them at the end (the parts, checksums included, travel
    # back from the workers): the settings reach the workers with s3.settings().
    source = blobs(tmp_path / "blobs", 6, 1000)
    run(s3, "pack", str(source), s3.uri("out/x.rec"), "--pass-through", "--no-shuffle",
        "--shard-records", "3", "-j", "2", "--sse", "AES256", "--storage-class",
        "STANDARD_IA", "--request-payer", "requester",
    )  # fmt: skip
    made = assert_new_objects_carry(s3, {SSE: "AES256", STORAGE_CLASS: "STANDARD_IA"})
    assert not [seen for seen in made if operation(seen) == "CopyObject"]
    assert_every_request_pays(s3)
    shards = [f"out/x-{n:05d}-of-00002.{ext}" for n in range(2) for ext in ("idx", "rec")]
    for key in shards:
        (complete,) = [c for c in requests(s3, "CompleteMultipartUpload") if key_of(s3, c) == key]
        assert complete.body is not None and b"<ChecksumCRC32>" in complete.body
        head = s3.client.head_object(Bucket=s3.bucket, Key=key)
        assert (head["ServerSideEncryption"], head["StorageClass"]) == ("AES256", "STANDARD_IA")
    for part in requests(s3, "UploadPart"):
        assert part.header(SDK_CHECKSUM_ALGORITHM) == "CRC32" and part.header(CRC32)


def test_a_large_copy_is_a_multipart_copy_with_the_same_settings(s3) -> None:
    data = os.urandom(9 * MiB)  # over boto3's 8 MB multipart threshold
    s3.put("src.bin", data)
    s3_module.configure(sse="AES256", storage_class="STANDARD_IA", acl="private",
                        request_payer="requester")  # fmt: skip
    s3_module.copy(s3.uri("src.bin"), s3.uri("dst.bin"))
    assert [operation(seen) for seen in s3.proxy.requests] == [
        "HeadObject", "CreateMultipartUpload", "UploadPartCopy", "UploadPartCopy",
        "CompleteMultipartUpload",
    ]  # fmt: skip
    assert_new_objects_carry(
        s3, {SSE: "AES256", STORAGE_CLASS: "STANDARD_IA", ACL: "private", PAYER: "requester"}
    )
    assert_every_request_pays(s3)
    assert s3.get("dst.bin") == data
    head = s3.client.head_object(Bucket=s3.bucket, Key="dst.bin")
    assert (head["ServerSideEncryption"], head["StorageClass"]) == ("AES256", "STANDARD_IA")


def test_lst_gen_and_manifest_gen_read_and_write_s3_with_the_options(s3, tmp_path: Path) -> None:
    s3.upload_tree(make_tree(tmp_path / "photos", {"cat": 2, "dog": 2}, size=(8, 8)), "photos")
    run(s3, "--request-payer", "requester", "--acl", "public-read", "lst-gen",
        s3.uri("photos"), s3.uri("lists/photos"), "--recursive", "--sse", "AES256")  # fmt: skip
    assert_new_objects_carry(s3, {SSE: "AES256", STORAGE_CLASS: None, ACL: "public-read"})
    assert requests(s3, "ListObjectsV2")
    assert_every_request_pays(s3)
    grants = s3.client.get_object_acl(Bucket=s3.bucket, Key="lists/photos.lst")["Grants"]
    assert any(
        g["Grantee"].get("URI", "").endswith("/global/AllUsers") and g["Permission"] == "READ"
        for g in grants
    )
    s3.proxy.reset()
    run(s3, "manifest-gen", s3.uri("photos"), s3.uri("lists/photos.manifest"),
        "--request-payer", "requester", "--storage-class", "ONEZONE_IA", "--sse", "AES256",
    )  # fmt: skip
    (put,) = assert_new_objects_carry(s3, {SSE: "AES256", STORAGE_CLASS: "ONEZONE_IA", ACL: None})
    assert put.header(CRC32) == crc32(s3.get("lists/photos.manifest"))
    assert_every_request_pays(s3)
    head = s3.client.head_object(Bucket=s3.bucket, Key="lists/photos.manifest")
    assert head["StorageClass"] == "ONEZONE_IA"


def test_reads_pay_as_requester_in_worker_processes_too(s3, tmp_path: Path) -> None:
    s3.upload_tree(make_tree(tmp_path / "photos", {"cat": 4, "dog": 4}, size=(8, 8)), "photos")
    run(s3, "pack", s3.uri("photos"), str(tmp_path / "x.rec"), "--pass-through", "-j", "2",
        "--request-payer", "requester")  # fmt: skip
    assert len(requests(s3, "GetObject")) == 8  # each image once, fetched by the workers
    assert_every_request_pays(s3)
    s3.put("x.rec", (tmp_path / "x.rec").read_bytes())
    s3.put("x.idx", (tmp_path / "x.idx").read_bytes())
    s3.proxy.reset()
    run(s3, "--request-payer", "requester", "unpack", s3.uri("x.rec"), str(tmp_path / "out"),
        "--ids", "1,3")  # fmt: skip
    assert any(seen.range for seen in requests(s3, "GetObject"))  # ranged reads through .idx
    assert_every_request_pays(s3)


def test_options_of_one_run_do_not_linger_into_the_next(s3, tmp_path: Path) -> None:
    photos = make_tree(tmp_path / "photos", {"cat": 2}, size=(8, 8))
    run(s3, "--sse", "aws:kms", "--sse-kms-key-id", KMS_KEY, "--storage-class", "STANDARD_IA",
        "--acl", "private", "--request-payer", "requester", "lst-gen", str(photos),
        s3.uri("a/photos"), "--recursive")  # fmt: skip
    s3.proxy.reset()
    run(s3, "lst-gen", str(photos), s3.uri("b/photos"), "--recursive")
    assert_new_objects_carry(
        s3, {SSE: None, KMS_KEY_ID: None, STORAGE_CLASS: None, ACL: None, PAYER: None}
    )
    assert s3_module.settings().sse is None


# --------------------------------------------------------------------------- checksums


@pytest.mark.parametrize(
    ("damaged", "what"), [("partNumber=2", "a part"), ("/out/x.idx", "a whole object")]
)
def test_bytes_damaged_on_their_way_are_refused_and_nothing_is_left(
    s3, tmp_path: Path, damaged: str, what: str
) -> None:
    source = blobs(tmp_path / "blobs", 3, 3 * MiB)
    s3.proxy.fail(1, method="PUT", match=damaged, mode="corrupt")  # one byte flipped, once
    result = run(s3, "pack", str(source), s3.uri("out/x.rec"), "--pass-through", code=1)
    failed = "x.rec" if what == "a part" else "x.idx"
    assert error_line(result) == (
        f"Error: {s3.uri('out/' + failed)}: S3 refused the upload: the bytes it received do "
        "not match their checksum (damaged on the way); nothing was stored (run again; if it "
        "keeps happening, check the network and any proxy between here and S3)"
    )
    assert s3.keys("out/") == [] and s3.uploads() == []


def test_moto_alone_stores_a_damaged_body_so_the_proxy_checks_as_s3_does(s3) -> None:
    # Why the proxy checks checksums: without it moto keeps the damaged bytes with the
    # checksum sent for the intact ones (botocore notices when it reads them back). If this
    # fails, moto has learnt to check, and the proxy's check can go.
    from botocore.exceptions import FlexibleChecksumError

    s3.proxy.check_checksums = False
    s3.proxy.fail(1, method="PUT", match="/x.bin", mode="corrupt")
    s3_module.put_bytes(s3.uri("x.bin"), b"0123456789")
    assert s3.keys() == ["x.bin"]
    with pytest.raises(FlexibleChecksumError):
        s3.get("x.bin")


def test_checksums_are_asked_for_even_where_botocore_would_not_send_them(
    s3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # botocore >= 1.36 checksums PutObject and UploadPart by itself, but neither declares
    # the algorithm at CreateMultipartUpload (which S3 needs to take part checksums) nor
    # asks for one on a copy: imgfmt asks for all of them (the tests above). The AWS setting
    # request_checksum_calculation=when_required, meant for stores that refuse checksums,
    # turns every one of them off.
    source = blobs(tmp_path / "blobs", 3, 2 * MiB)
    monkeypatch.setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "when_required")
    s3_module.reset()  # the client reads the setting when made
    try:
        run(s3, "pack", str(source), s3.uri("x.rec"), "--pass-through")
    finally:
        monkeypatch.undo()
        s3_module.reset()
    assert s3.proxy.count("PUT", "partNumber=") == 2
    for seen in s3.proxy.requests:
        assert not [name for name, _ in seen.headers if "checksum" in name], seen
    assert s3.get("x.rec")


# --------------------------------------------------------------------------- usage


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--storage-class", "FROZEN"], "Invalid value for '--storage-class': 'FROZEN' is not "
         "one of 'STANDARD', 'REDUCED_REDUNDANCY', 'STANDARD_IA', 'ONEZONE_IA', "
         "'INTELLIGENT_TIERING', 'GLACIER', 'DEEP_ARCHIVE', 'GLACIER_IR'."),
        (["--sse", "aes256"], "Invalid value for '--sse': 'aes256' is not one of 'AES256', "
         "'aws:kms', 'aws:kms:dsse'."),
        (["--acl", "owner"], "Invalid value for '--acl': 'owner' is not one of 'private', "
         "'public-read', 'public-read-write', 'authenticated-read', 'aws-exec-read', "
         "'bucket-owner-read', 'bucket-owner-full-control'."),
        (["--request-payer", "owner"], "Invalid value for '--request-payer': 'owner' is not "
         "'requester'."),
        (["--sse-kms-key-id", KMS_KEY], "--sse-kms-key-id needs --sse aws:kms (or "
         "aws:kms:dsse): the key is for SSE-KMS encryption"),
        (["--sse", "AES256", "--sse-kms-key-id", KMS_KEY], "--sse-kms-key-id needs --sse "
         "aws:kms (or aws:kms:dsse): the key is for SSE-KMS encryption"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("where", ["before", "after"])
def test_bad_values_are_usage_errors(
    s3, tmp_path: Path, options: list[str], message: str, where: str
) -> None:
    command = ["lst-gen", str(tmp_path), s3.uri("x"), "--recursive"]
    args = [*options, *command] if where == "before" else [*command, *options]
    result = run(s3, *args, code=2)
    assert result.stderr.strip().splitlines()[-1] == f"Error: {message}"
    assert s3.proxy.requests == []  # refused before any request


def test_the_library_checks_its_settings_too(s3) -> None:
    with pytest.raises(UsageError, match="`sse_kms_key_id` needs `sse` aws:kms"):
        s3_module.configure(sse_kms_key_id=KMS_KEY)
    with pytest.raises(UsageError, match="unknown `storage_class` 'FROZEN'"):
        s3_module.configure(storage_class="FROZEN")
    assert s3_module.configure(sse="aws:kms", sse_kms_key_id=KMS_KEY).sse_kms_key_id == KMS_KEY


def test_choices_are_values_s3_takes() -> None:
    import botocore.session

    model = botocore.session.get_session().get_service_model("s3")
    for ours, shape in [
        (s3_module.SSE_ALGORITHMS, "ServerSideEncryption"),
        (s3_module.STORAGE_CLASSES, "StorageClass"),
        (s3_module.CANNED_ACLS, "ObjectCannedACL"),
        (s3_module.REQUEST_PAYERS, "RequestPayer"),
    ]:
        assert set(ours) <= set(model.shape_for(shape).enum), shape


# --------------------------------------------------------------------------- errors


def test_a_refused_write_names_what_bucket_policies_require(s3, tmp_path: Path) -> None:
    photos = make_tree(tmp_path / "photos", {"cat": 2}, size=(8, 8))
    s3.proxy.fail(99, method="PUT", status=403)  # a bucket policy denying unencrypted puts
    result = run(s3, "lst-gen", str(photos), s3.uri("x"), "--recursive", code=1)
    assert error_line(result) == (
        f"Error: {s3.uri('x.lst')}: access denied (check that the credentials (--profile, "
        "AWS_PROFILE) may write here, and what the bucket's policy requires of new objects "
        "(--sse, --sse-kms-key-id, --acl bucket-owner-full-control, --request-payer "
        "requester))"
    )


def test_an_archive_class_that_a_rename_cannot_copy_is_one_clear_line(s3, tmp_path: Path) -> None:
    source = blobs(tmp_path / "blobs", 4, 1000)
    result = run(s3, "pack", str(source), s3.uri("out/x.rec"), "--pass-through",
                 "--no-shuffle", "--shard-size", "3KB", "--storage-class", "GLACIER",
                 code=1)  # fmt: skip
    line = error_line(result)
    assert line.startswith(f"Error: {s3.uri('out/x-0000')}") and line.endswith(
        "S3 copies no object of storage class GLACIER (outputs are renamed by a server-side "
        "copy when their final name is known only at the end, as --shard-size shards) (write "
        "with --storage-class GLACIER_IR, or archive later with a bucket lifecycle rule)"
    ), line
    assert s3.keys("out/") == [] and s3.uploads() == []


def test_a_read_damaged_on_its_way_is_read_again(s3) -> None:
    # S3 sends the checksum of a whole object with it (botocore asks for it); botocore
    # checks the bytes against it, and a damaged read is read again.
    data = os.urandom(100_000)
    s3.put("x.bin", data)
    s3_module.configure(request_payer="requester")
    s3.proxy.fail(1, method="GET", match="/x.bin", mode="corrupt")
    assert s3_module.get_bytes(s3.uri("x.bin")) == data
    assert s3.proxy.count("GET", "/x.bin") == 2
    assert_every_request_pays(s3)  # the second try too
    s3.proxy.fail(99, method="GET", match="/x.bin", mode="corrupt")
    with pytest.raises(StorageError) as raised:
        s3_module.get_bytes(s3.uri("x.bin"))
    assert str(raised.value) == (
        f"{s3.uri('x.bin')}: the bytes received do not match the object's checksum (damaged "
        "on the way; 3 attempts) (run again; if it keeps happening, check the network and any "
        "proxy between here and S3)"
    )
