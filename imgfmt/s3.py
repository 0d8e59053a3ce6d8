"""Amazon S3 and S3-compatible stores (MinIO, Ceph, ...): the only module that imports boto3.

``imgfmt.storage`` calls into this module for every ``s3://bucket/key`` path; commands never
do. boto3 and botocore are imported lazily, on the first request, so ``imgfmt --help`` and
purely local runs never load them.

- Credentials, region and endpoint come the way the AWS CLI finds them (the standard boto3
  chain, ``AWS_PROFILE``, ``AWS_ENDPOINT_URL``, ``~/.aws/config``), overridden by
  :func:`configure` (the CLI's global ``--profile``, ``--region``, ``--endpoint-url``).
- What buckets with policies require, as the AWS CLI names it: every new object (PutObject,
  CreateMultipartUpload, and the CopyObject that renames one) carries the settings'
  server-side encryption, storage class and canned ACL; ``request_payer`` goes on every
  request (reads, lists, HEADs, writes, multipart steps, copies).
- Every upload carries a CRC32 content checksum (PutObject, and UploadPart with the part
  checksums in CompleteMultipartUpload), computed by botocore from the bytes sent: S3
  refuses bytes damaged on the way (``BadDigest``) instead of storing them. Asked for
  explicitly, so every botocore version does the same; ``request_checksum_calculation =
  when_required`` (``AWS_REQUEST_CHECKSUM_CALCULATION``), the AWS setting for stores that
  reject checksums, turns them off.
- One client per process, made on first use and made again after a fork: worker processes
  never share their parent's connections.
- Transient failures (5xx, throttling, dropped connections, timeouts) are retried by
  botocore's "standard" retry mode with exponential backoff and jitter; a stream that breaks
  while it is being read is reopened at the byte where it broke.
- Every botocore exception is turned here, once, into a one-line ``StorageError`` that
  names the URI and says what to do (``raise ... from err``). Credentials, signatures and
  query strings never appear in a message.

Reads: :class:`Reader` streams one GET from the start (sequential reads), reopening with a
``Range`` from wherever it is moved to (a seekable file); read from the start on, an object
larger than :data:`READ_AHEAD_MIN_PARTS` parts is read ahead with ranged GETs of one part
each, ``max_concurrency`` at once (as the AWS CLI downloads); :func:`get_bytes` fetches a
byte range in one GET (random access through an ``.idx``). Writes: :class:`Writer` uploads a
multipart upload while it is written, :data:`DEFAULT_MAX_CONCURRENCY` parts at once (memory:
that many parts and the one being filled), and makes the object exist only in
:meth:`Writer.complete`; :meth:`Writer.abort` aborts the upload. An object smaller than one
part is a single PutObject at completion.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import functools
import hashlib
import io
import os
import random
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from urllib.parse import urlsplit

from imgfmt.errors import StorageError, UsageError

T = TypeVar("T")

#: URIs this module handles start with this.
SCHEME = "s3://"

MiB = 1 << 20
#: Multipart part size. S3 requires at least 5 MiB for every part but the last, and allows
#: at most 10,000 parts; 8 MiB is the AWS CLI's default.
DEFAULT_PART_SIZE = 8 * MiB
MIN_PART_SIZE = 5 * MiB
MAX_PARTS = 10_000
#: After this many parts the part size doubles, so an upload never runs out of part numbers
#: (8 MiB parts would stop at 80 GB).
PARTS_PER_SIZE_STEP = 1_000

#: Attempts per request, first try included (botocore "standard" retry mode: exponential
#: backoff with jitter on 5xx, throttling, connection errors and timeouts). ``AWS_MAX_ATTEMPTS``
#: in the environment overrides it, as for the AWS CLI.
DEFAULT_MAX_ATTEMPTS = 5
#: Seconds to wait for a connection, and for the next bytes of a response.
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0
#: First pause before reopening a broken stream (doubles each time, with jitter).
STREAM_RETRY_BASE_DELAY = 0.05

#: Requests one process runs at once (image GETs when packing, PUTs when unpacking); the
#: connection pool holds as many, plus those of one writer's parts.
MAX_CONCURRENCY = 16
#: Parts of one multipart upload sent at once (each on its own connection): the AWS CLI's
#: ``max_concurrent_requests`` default (s3transfer's 10). One S3 connection carries tens of
#: MB/s; parallel connections add up. A writer holds that many parts in flight plus the one
#: it is filling: (10 + 1) x 8 MiB = 88 MiB with the default part size.
DEFAULT_MAX_CONCURRENCY = 10

#: A :class:`Reader` reads ahead (concurrent ranged GETs of ``part_size`` bytes,
#: ``max_concurrency`` at once) only in an object larger than this many parts: smaller ones
#: stay one GET (as the AWS CLI's ``multipart_threshold`` of 8 MiB splits larger downloads).
READ_AHEAD_MIN_PARTS = 2
#: ... and only once this much has been read in order from the start (so that opening an
#: object to read one record here and there starts no download of the whole object).
READ_AHEAD_TRIGGER = 1 * MiB
#: ... unless it is opened inside :func:`reading_through`: then as it is opened.
_read_through: contextvars.ContextVar[bool] = contextvars.ContextVar("read_through", default=False)
#: Bytes read from a ranged GET's body at a time (a cancelled read-ahead stops between two).
RANGE_READ_CHUNK = 1 * MiB

#: S3's largest ListObjectsV2 page.
LIST_PAGE_SIZE = 1000

#: ``--sse`` values (the AWS CLI's): S3-managed keys, KMS keys, dual-layer KMS encryption.
SSE_ALGORITHMS = ("AES256", "aws:kms", "aws:kms:dsse")
#: The SSE algorithms that take a KMS key (``--sse-kms-key-id``; without one, the account's
#: AWS-managed ``aws/s3`` key).
KMS_SSE_ALGORITHMS = ("aws:kms", "aws:kms:dsse")
#: ``--storage-class`` values: those the AWS CLI's ``aws s3 cp`` takes. GLACIER and
#: DEEP_ARCHIVE objects cannot be read or copied until restored (GLACIER_IR can).
STORAGE_CLASSES = (
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "GLACIER_IR",
)
#: ``--acl`` values: S3's canned ACLs for objects (botocore's ``ObjectCannedACL``; the AWS
#: CLI's ``log-delivery-write`` applies to buckets only).
CANNED_ACLS = (
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
)
#: ``--request-payer`` values: the requester pays for a Requester Pays bucket's requests.
REQUEST_PAYERS = ("requester",)
#: The content checksum sent with every upload (computed by botocore from the bytes sent;
#: S3 answers ``BadDigest`` to bytes that do not match it). CRC32 is what boto3 computes by
#: default since botocore 1.36, and needs no extra package (CRC32C needs awscrt).
CHECKSUM_ALGORITHM = "CRC32"
#: The member of a response (UploadPart) and of a completed part that holds that checksum.
CHECKSUM_MEMBER = f"Checksum{CHECKSUM_ALGORITHM}"

#: Error codes of bytes that S3 received damaged: not what their checksum (CRC32,
#: Content-MD5) or signed payload hash says.
_DAMAGED_IN_TRANSIT = {"BadDigest", "XAmzContentSHA256Mismatch"}
#: Error codes of a read (InvalidObjectState) or copy (ObjectNotInActiveTierError) of an
#: object in the GLACIER or DEEP_ARCHIVE storage class that has not been restored.
_ARCHIVED = {"InvalidObjectState", "ObjectNotInActiveTierError"}
#: Operations that write an object (their "access denied" may be a bucket policy's demand).
_WRITES = {"put_object", "create_multipart_upload", "upload_part", "complete_multipart_upload"}
#: Error codes meaning "this object or bucket is not there" (HEAD requests only get "404").
_MISSING_KEY = {"NoSuchKey", "404", "NotFound"}
_DENIED = {"AccessDenied", "403", "AllAccessDisabled", "AccountProblem", "Forbidden"}
_BAD_CREDENTIALS = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "AuthorizationHeaderMalformed",
}
_TRANSIENT = {
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
    "Throttling",
    "500",
    "502",
    "503",
    "504",
}


@dataclass(frozen=True)
class S3Settings:
    """How to reach S3. ``None`` means: as boto3 finds it (environment, ~/.aws, defaults).

    ``sse``, ``sse_kms_key_id``, ``storage_class`` and ``acl`` go on every object written;
    ``None`` leaves them to the bucket's defaults. ``request_payer`` goes on every request.
    Checked when made: an unknown value, or a KMS key without KMS encryption, is a
    ``UsageError`` (so give ``sse`` and ``sse_kms_key_id`` to one :func:`configure` call).
    """

    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    part_size: int = DEFAULT_PART_SIZE
    max_attempts: int | None = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    sse: str | None = None
    sse_kms_key_id: str | None = None
    storage_class: str | None = None
    acl: str | None = None
    request_payer: str | None = None
    #: Parts of one upload in flight at once, and ranged GETs of one download read ahead
    #: (:data:`DEFAULT_MAX_CONCURRENCY`); 1 sends them one after another, and reads one
    #: stream.
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise UsageError(f"S3 max_concurrency {self.max_concurrency} is below 1")
        for name, allowed in (
            ("sse", SSE_ALGORITHMS),
            ("storage_class", STORAGE_CLASSES),
            ("acl", CANNED_ACLS),
            ("request_payer", REQUEST_PAYERS),
        ):
            value = getattr(self, name)
            if value is not None and value not in allowed:
                raise UsageError(f"unknown `{name}` {value!r}: use one of {', '.join(allowed)}")
        if self.sse_kms_key_id and self.sse not in KMS_SSE_ALGORITHMS:
            raise UsageError(
                "`sse_kms_key_id` needs `sse` aws:kms (or aws:kms:dsse): the key is for "
                "SSE-KMS encryption"
            )

    @property
    def attempts(self) -> int:
        if self.max_attempts is not None:
            return self.max_attempts
        try:
            return max(1, int(os.environ.get("AWS_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS)))
        except ValueError:
            return DEFAULT_MAX_ATTEMPTS


_settings = S3Settings()
_lock = threading.Lock()
_client: tuple[int, S3Settings, Any] | None = None  # (pid, settings it was made with, client)
_pool: tuple[int, ThreadPoolExecutor] | None = None


def configure(**changes: Any) -> S3Settings:
    """Change how S3 is reached (fields of :class:`S3Settings`); returns the new settings.

    Fields not named keep their value. Worker processes forked later inherit the settings;
    a spawned worker must call this itself.
    """
    global _settings
    part_size = changes.get("part_size")
    if part_size is not None and part_size < MIN_PART_SIZE:
        raise UsageError(f"S3 part size {part_size} is below S3's minimum of 5 MiB")
    _settings = replace(_settings, **changes)
    return _settings


def reset() -> None:
    """Forget this process's client, so the next request finds credentials afresh."""
    global _client
    with _lock:
        _client = None


def settings() -> S3Settings:
    return _settings


def adopt(wanted: S3Settings) -> None:
    """Use ``wanted`` (settings handed to a worker process); cheap when already in use."""
    global _settings
    if wanted != _settings:
        _settings = wanted


# --------------------------------------------------------------------------- URIs


def is_s3(path: object) -> bool:
    return isinstance(path, str) and path.startswith(SCHEME)


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` -> ``("bucket", "some/key")``."""
    bucket, _slash, key = uri[len(SCHEME) :].partition("/")
    if not bucket:
        raise UsageError(f"{uri!r} names no bucket", hint="write s3://bucket/key")
    return bucket, key


def _folder_key(key: str) -> str:
    """The key prefix of everything "inside" ``key``: ``a/b`` -> ``a/b/``; the bucket -> ``""``."""
    key = key.rstrip("/")
    return key + "/" if key else ""


# --------------------------------------------------------------------------- client


def client() -> Any:
    """This process's S3 client for the current settings (made on first use, and after fork)."""
    global _client
    current = _client
    pid = os.getpid()
    if current is not None and current[0] == pid and current[1] == _settings:
        return current[2]
    with _lock:
        current = _client
        if current is not None and current[0] == pid and current[1] == _settings:
            return current[2]
        import boto3
        from botocore.config import Config

        wanted = _settings
        session = boto3.session.Session(profile_name=wanted.profile, region_name=wanted.region)
        config = Config(
            retries={"mode": "standard", "total_max_attempts": wanted.attempts},
            connect_timeout=wanted.connect_timeout,
            read_timeout=wanted.read_timeout,
            max_pool_connections=MAX_CONCURRENCY + wanted.max_concurrency,
            user_agent_extra="imgfmt",
        )
        try:
            made = session.client("s3", endpoint_url=wanted.endpoint_url, config=config)
        except ValueError as err:  # botocore: "Invalid endpoint: ..."
            raise UsageError(
                f"invalid S3 endpoint URL {wanted.endpoint_url!r}",
                hint="give --endpoint-url (or AWS_ENDPOINT_URL) as http(s)://host[:port]",
            ) from err
        if wanted.request_payer:
            # On the client, not at each call, so that boto3's managed copy (its HeadObject,
            # UploadPartCopy, ...) carries it too.
            made.meta.events.register(
                "before-sign.s3", functools.partial(_add_request_payer, wanted.request_payer)
            )
        _client = (pid, wanted, made)
        return made


#: The header of ``request_payer``: "requesters must include x-amz-request-payer in their
#: requests ... for POST, GET and HEAD requests" (S3's Requester Pays documentation).
REQUEST_PAYER_HEADER = "x-amz-request-payer"


def _add_request_payer(payer: str, request: Any, **_: Any) -> None:
    """botocore hook, before a request is signed: the request payer header on every
    request, also those whose API has no ``RequestPayer`` parameter (HeadBucket)."""
    if REQUEST_PAYER_HEADER not in request.headers:
        request.headers[REQUEST_PAYER_HEADER] = payer


def sends_checksums() -> bool:
    """Whether uploads carry :data:`CHECKSUM_ALGORITHM` checksums: always, unless the AWS
    configuration says ``request_checksum_calculation = when_required`` (for S3-compatible
    stores that reject them; older botocore has no such setting)."""
    config = client().meta.config
    return getattr(config, "request_checksum_calculation", None) != "when_required"


def object_args() -> dict[str, str]:
    """The parameters every new object is written with (PutObject, CreateMultipartUpload,
    CopyObject): server-side encryption, storage class and ACL from the settings, and the
    checksum algorithm."""
    wanted = _settings
    args: dict[str, str] = {}
    if sends_checksums():
        args["ChecksumAlgorithm"] = CHECKSUM_ALGORITHM
    for parameter, value in (
        ("ServerSideEncryption", wanted.sse),
        ("SSEKMSKeyId", wanted.sse_kms_key_id),
        ("StorageClass", wanted.storage_class),
        ("ACL", wanted.acl),
    ):
        if value:
            args[parameter] = value
    return args


def executor() -> ThreadPoolExecutor:
    """This process's pool of :data:`MAX_CONCURRENCY` threads for concurrent requests."""
    global _pool
    current = _pool
    if current is not None and current[0] == os.getpid():
        return current[1]
    with _lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), ThreadPoolExecutor(MAX_CONCURRENCY, "imgfmt-s3"))
        return _pool[1]


def _endpoint_text() -> str:
    """The endpoint in use, scheme and host only (never a path or a query string)."""
    url = (
        _settings.endpoint_url
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
    )
    if not url:
        return "the AWS S3 endpoint"
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else "the configured endpoint"


def wrap_error(err: BaseException, uri: str, *, writing: bool = False) -> StorageError:
    """One botocore exception as a one-line ``StorageError`` naming ``uri``, with a fix;
    ``writing``: it answered a request that writes an object."""
    from botocore import exceptions as bex

    attempts = _settings.attempts
    if isinstance(err, bex.ClientError):
        error = err.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = str(error.get("Message") or code or status)
        if code in _DAMAGED_IN_TRANSIT:
            return StorageError(
                "S3 refused the upload: the bytes it received do not match their checksum "
                "(damaged on the way); nothing was stored",
                path=uri,
                hint="run again; if it keeps happening, check the network and any proxy "
                "between here and S3",
            )
        if code == "AccessControlListNotSupported":
            return StorageError(
                "the bucket does not accept ACLs (object ownership: bucket owner enforced)",
                path=uri,
                hint="leave out --acl",
            )
        if code.startswith("KMS.") or code == "KMSKeyNotFound":
            return StorageError(
                f"S3 could not use the KMS key ({code}: {message})",
                path=uri,
                hint="check --sse-kms-key-id, and that the credentials may use the key "
                "(kms:GenerateDataKey, kms:Decrypt)",
            )
        if code in _ARCHIVED:
            return StorageError(
                "the object is archived (GLACIER or DEEP_ARCHIVE storage class): S3 reads "
                "or copies it only once restored",
                path=uri,
                hint="restore it (aws s3api restore-object), or write with --storage-class "
                "GLACIER_IR: archived, yet readable at once",
            )
        if code == "NoSuchBucket":
            bucket = split_uri(uri)[0]
            return NotFound(
                f"bucket {bucket!r} does not exist",
                path=uri,
                hint="check the bucket name, and --endpoint-url / --region",
            )
        if code in _MISSING_KEY or status == 404:
            return NotFound("no such object", path=uri, hint="check the key")
        if code == "NoSuchUpload":
            return StorageError(
                "the multipart upload was aborted by someone else", path=uri, hint="run again"
            )
        if (code in _DENIED or status == 403) and writing:
            return StorageError(
                "access denied",
                path=uri,
                hint="check that the credentials (--profile, AWS_PROFILE) may write here, and "
                "what the bucket's policy requires of new objects (--sse, --sse-kms-key-id, "
                "--acl bucket-owner-full-control, --request-payer requester)",
            )
        if code in _DENIED or status == 403:
            return StorageError(
                "access denied",
                path=uri,
                hint="check that the credentials (--profile, AWS_PROFILE) may use this bucket",
            )
        if code in _BAD_CREDENTIALS:
            return StorageError(
                f"credentials refused ({code})",
                path=uri,
                hint="check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the --profile",
            )
        if code == "PreconditionFailed":  # If-Match of a read-ahead range
            return StorageError(
                "the object changed while it was being read", path=uri, hint="run again"
            )
        if code == "InvalidRange":
            return RangeNotSatisfiable(str(error.get("Message") or code), path=uri)
        if code == "InvalidBucketName":
            return StorageError(str(error.get("Message") or code), path=uri)
        if code in _TRANSIENT or (status is not None and status >= 500):
            return StorageError(
                f"S3 kept failing ({code or status}) after {attempts} attempts",
                path=uri,
                hint="try again later; raise AWS_MAX_ATTEMPTS to retry longer",
            )
        return StorageError(f"S3 error {code}: {error.get('Message') or status}", path=uri)
    if isinstance(err, (bex.NoCredentialsError, bex.PartialCredentialsError)):
        return StorageError(
            "no AWS credentials found",
            path=uri,
            hint="set AWS_PROFILE or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or pass "
            "--profile",
        )
    if isinstance(err, bex.ProfileNotFound):
        return StorageError(
            f"AWS profile {_settings.profile or os.environ.get('AWS_PROFILE')!r} not found",
            path=uri,
            hint="check --profile / AWS_PROFILE against ~/.aws/config",
        )
    if isinstance(err, bex.FlexibleChecksumError):  # a GET's body against S3's checksum
        return StorageError(
            f"the bytes received do not match the object's checksum (damaged on the way; "
            f"{attempts} attempts)",
            path=uri,
            hint="run again; if it keeps happening, check the network and any proxy between "
            "here and S3",
        )
    if isinstance(err, (bex.EndpointConnectionError, bex.ConnectTimeoutError)):
        return StorageError(
            f"cannot connect to {_endpoint_text()} (tried {attempts} times)",
            path=uri,
            hint="check --endpoint-url / AWS_ENDPOINT_URL and the network",
        )
    if isinstance(
        err,
        (
            bex.ReadTimeoutError,
            bex.ConnectionClosedError,
            bex.ResponseStreamingError,
            bex.IncompleteReadError,
            bex.ConnectionError,
        ),
    ):
        return StorageError(
            f"connection to {_endpoint_text()} kept failing ({type(err).__name__}) "
            f"after {attempts} attempts",
            path=uri,
            hint="try again; raise AWS_MAX_ATTEMPTS to retry longer",
        )
    if isinstance(err, bex.ParamValidationError):
        return StorageError(f"invalid S3 request: {err}", path=uri)
    return StorageError(f"S3 error: {type(err).__name__}: {err}", path=uri)


def _boto_errors() -> tuple[type[BaseException], ...]:
    from botocore.exceptions import BotoCoreError, ClientError
    from urllib3.exceptions import HTTPError

    return (BotoCoreError, ClientError, HTTPError)


#: Calls after which what HeadObject said may no longer hold (see :func:`remembering_sizes`).
_CHANGES = {"put_object", "complete_multipart_upload", "copy_object", "delete_object",
            "delete_objects", "abort_multipart_upload"}  # fmt: skip
#: Object sizes (None: no such object) remembered while a command runs, or None.
_sizes: dict[str, int | None] | None = None
_sizes_lock = threading.Lock()
_sizes_changes = 0  # how many times they were forgotten (an answer older than that is not kept)
_UNKNOWN = object()


def read_through() -> bool:
    """Whether this code runs inside :func:`reading_through` (it reads its input whole)."""
    return _read_through.get()


@contextlib.contextmanager
def reading_through() -> Iterator[None]:
    """Objects opened (:class:`Reader`) in the block are read from their start to their end
    (a whole scan: ``verify``, ``unpack`` of everything), so a large one is read ahead as
    it is opened instead of after :data:`READ_AHEAD_TRIGGER` bytes: the ranged GETs start a
    megabyte earlier (0.1 s at 10 MB/s a connection). Outside it, opening an object to read
    a record or two starts no download of the rest."""
    token = _read_through.set(True)
    try:
        yield
    finally:
        _read_through.reset(token)


@contextlib.contextmanager
def remembering_sizes() -> Iterator[None]:
    """While the block runs, :func:`object_size` asks S3 once per key: a command looks at
    its inputs several times as it starts (which format, is there an index, does the file
    exist, a class map beside it?), each a HeadObject round trip (20-50 ms on S3). The
    command sees one view of which objects exist; any write, copy or delete it makes
    forgets what was remembered. The CLI runs every command in this block."""
    global _sizes
    outer, _sizes = _sizes, {}
    try:
        yield
    finally:
        _sizes = outer


def call(uri: str, operation: str, **params: Any) -> Any:
    """Run one S3 API call (retried by botocore); its failure as a ``StorageError``."""
    changes = operation in _CHANGES and _sizes is not None
    if changes:
        _forget_sizes()
    try:
        return getattr(client(), operation)(**params)
    except _boto_errors() as err:
        raise wrap_error(err, uri, writing=operation in _WRITES) from err
    finally:
        if changes:  # again: a HeadObject answered while this call ran is not kept either
            _forget_sizes()


def _forget_sizes() -> None:
    global _sizes_changes
    with _sizes_lock:
        if _sizes is not None:
            _sizes.clear()
        _sizes_changes += 1


class NotFound(StorageError):
    """The bucket or object does not exist."""


class RangeNotSatisfiable(StorageError):
    """A ranged GET that starts at or past the object's end (HTTP 416)."""


# --------------------------------------------------------------------------- metadata


def object_size(uri: str) -> int | None:
    """The object's size in bytes (HeadObject), or None if there is no such object."""
    bucket, key = split_uri(uri)
    if not key:
        return None
    remembered, changes = _sizes, _sizes_changes
    if remembered is not None:
        known = remembered.get(uri, _UNKNOWN)  # one lookup: another thread may clear it
        if known is not _UNKNOWN:
            return known  # type: ignore[return-value]
    try:
        size: int | None = int(call(uri, "head_object", Bucket=bucket, Key=key)["ContentLength"])
    except NotFound:
        size = None
    if remembered is not None:
        with _sizes_lock:
            if remembered is _sizes and changes == _sizes_changes:
                remembered[uri] = size
    return size


def is_folder(uri: str) -> bool:
    """Whether any object lies under ``uri/`` (one ListObjectsV2 of one key)."""
    bucket, key = split_uri(uri)
    page = call(uri, "list_objects_v2", Bucket=bucket, Prefix=_folder_key(key), MaxKeys=1)
    return bool(page.get("KeyCount") or page.get("Contents") or page.get("CommonPrefixes"))


def check_bucket(uri: str) -> None:
    """Raise a ``StorageError`` unless the bucket of ``uri`` exists and may be reached."""
    bucket, _key = split_uri(uri)
    try:
        call(uri, "head_bucket", Bucket=bucket)
    except NotFound as err:  # HEAD answers a bare 404, without the NoSuchBucket code
        raise NotFound(
            f"bucket {bucket!r} does not exist",
            path=uri,
            hint="check the bucket name, and --endpoint-url / --region",
        ) from err


def list_keys(uri: str, *, recursive: bool = True) -> Iterator[str]:
    """The keys under ``uri/`` relative to it, page by page (ListObjectsV2, 1,000 a page).

    ``recursive`` False lists one level (``Delimiter="/"``): objects directly under ``uri``
    and, for each deeper folder, its name with a trailing ``/``.
    """
    bucket, key = split_uri(uri)
    prefix = _folder_key(key)
    params: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": LIST_PAGE_SIZE}
    if not recursive:
        params["Delimiter"] = "/"
    while True:
        page = call(uri, "list_objects_v2", **params)
        for item in page.get("Contents", ()):
            yield item["Key"][len(prefix) :]
        for item in page.get("CommonPrefixes", ()):
            yield item["Prefix"][len(prefix) :]
        token = page.get("NextContinuationToken")
        if not page.get("IsTruncated") or not token:
            return
        params["ContinuationToken"] = token


# --------------------------------------------------------------------------- reading


def _read_body(uri: str, body: Any, amount: int | None = None) -> bytes:
    try:
        return body.read(amount) if amount is not None else body.read()
    except _boto_errors() as err:
        raise _StreamBroken(wrap_error(err, uri)) from err


class _StreamBroken(Exception):
    """A response body failed while being read; carries the wrapped error."""

    def __init__(self, error: StorageError) -> None:
        super().__init__(str(error))
        self.error = error


def _retry_streaming(uri: str, attempt: Callable[[], T]) -> T:
    """Run ``attempt`` (a GET and the reading of its body); when the body breaks midway,
    wait (exponential backoff, jitter) and run it again, up to the configured attempts."""
    tries = _settings.attempts
    for number in range(tries):
        try:
            return attempt()
        except _StreamBroken as broken:
            if number == tries - 1:
                raise broken.error from broken
            time.sleep(random.random() * STREAM_RETRY_BASE_DELAY * 2**number)
    raise AssertionError("unreachable")


def get_bytes(uri: str, start: int = 0, length: int | None = None) -> bytes:
    """``length`` bytes from ``start`` (to the end if None) in one ranged GET."""
    bucket, key = split_uri(uri)
    params: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if length is not None and length <= 0:
        return b""
    if start or length is not None:
        end = "" if length is None else str(start + length - 1)
        params["Range"] = f"bytes={start}-{end}"

    def attempt() -> bytes:
        response = call(uri, "get_object", **params)
        return _read_body(uri, response["Body"])

    try:
        return _retry_streaming(uri, attempt)
    except RangeNotSatisfiable:
        return b""  # as a local read past the end: nothing there (an empty object too)


def get_many(uris: Sequence[str]) -> list[bytes | NotFound]:
    """Every object's bytes, fetched concurrently (at most :data:`MAX_CONCURRENCY` at once).

    A missing object gives its ``NotFound`` in its place; any other failure raises.
    """

    def fetch(uri: str) -> bytes | NotFound:
        try:
            return get_bytes(uri)
        except NotFound as err:
            return err

    if len(uris) <= 1:
        return [fetch(uri) for uri in uris]
    return list(executor().map(fetch, uris))


#: Full-object checksums a :class:`Reader` checks itself when it reads an object through
#: ranged GETs (S3 sends an object's checksum only with a GET of all of it): name in the
#: GetObject response, and a running digest ``(state, bytes) -> state`` with its final value.
_CHECKSUMS: dict[
    str, tuple[Callable[[], Any], Callable[[Any, bytes], Any], Callable[[Any], bytes]]
] = {
    "ChecksumCRC32": (
        lambda: 0,
        lambda state, data: zlib.crc32(data, state),
        lambda state: state.to_bytes(4, "big"),
    ),
    "ChecksumSHA1": (hashlib.sha1, lambda h, data: h.update(data) or h, lambda h: h.digest()),
    "ChecksumSHA256": (hashlib.sha256, lambda h, data: h.update(data) or h, lambda h: h.digest()),
}


class _Cancelled(Exception):
    """A read-ahead range no longer wanted (its reader was closed or moved)."""


def _get_range(uri: str, start: int, end: int, etag: str | None, stopped: threading.Event) -> bytes:
    """Bytes ``[start, end)`` of ``uri`` in one ranged GET (``If-Match: etag``); a body that
    breaks midway is reopened at the byte where it broke. Shorter if the object ends first."""
    bucket, key = split_uri(uri)
    got = bytearray()

    def attempt() -> None:
        params: dict[str, Any] = {
            "Bucket": bucket,
            "Key": key,
            "Range": f"bytes={start + len(got)}-{end - 1}",
        }
        if etag:
            params["IfMatch"] = etag
        body = call(uri, "get_object", **params)["Body"]
        try:
            while len(got) < end - start:
                if stopped.is_set():
                    raise _Cancelled
                chunk = _read_body(uri, body, min(RANGE_READ_CHUNK, end - start - len(got)))
                if not chunk:
                    return
                got.extend(chunk)
        finally:
            body.close()

    if end <= start:
        return b""
    try:
        _retry_streaming(uri, attempt)
    except RangeNotSatisfiable:
        pass  # the object shrank below ``start``: nothing there
    return bytes(got)


class Reader(io.RawIOBase):
    """A read-only, seekable file over one object.

    Reading streams the body of one GET (opened at construction, so a missing object fails
    at once, like ``open``). Seeking elsewhere closes that stream; the next read opens a GET
    with ``Range: bytes=POS-``. Wrap it in ``io.BufferedReader`` (``storage.open_input``
    does) for efficient small reads.

    Read ahead: one stream carries what one connection carries (tens of MB/s from S3). In
    an object of more than :data:`READ_AHEAD_MIN_PARTS` parts (``part_size``, 8 MiB by
    default), once :data:`READ_AHEAD_TRIGGER` bytes have been read in order from the start
    (as it is opened, inside :func:`reading_through`),
    everything after the first part is fetched as ranged GETs of one part each, up to
    ``max_concurrency`` (10) at once on this reader's own threads, and handed out in order
    while the first GET's stream delivers the first part. Memory: at most ``max_concurrency``
    parts fetched or waiting plus the one being read, ``(N + 1) x part_size``: 88 MiB at the
    defaults. Each range carries ``If-Match`` with the object's ETag (an object replaced
    meanwhile fails with one error instead of mixing two versions), and is reopened where it
    broke as the stream is; a range that still fails fails the read with its error (the
    ranges after it are dropped). Read this way to its end, the object is checked against
    its full-object checksum (CRC32, SHA-1, SHA-256), which S3 sends only with a GET of all
    of it, as botocore checks a single stream. A seek elsewhere ends the read-ahead for good
    (random access reads what it asks for), and so does a fork.
    """

    def __init__(
        self, uri: str, part_size: int | None = None, max_concurrency: int | None = None
    ) -> None:
        super().__init__()
        self.uri = uri
        self._bucket, self._key = split_uri(uri)
        self._pos = 0
        self._body: Any = None
        self._body_pos = -1  # where the open body's next byte is
        self.size = -1
        self.part_size = part_size or _settings.part_size
        self.max_concurrency = max_concurrency or _settings.max_concurrency
        self._etag: str | None = None
        self._checksum: tuple[str, str] | None = None  # (response member, base64 value)
        # Read-ahead: "waiting" until it starts, "on" (the ranges from ``_ahead_from``), "off".
        self._ahead_state = "waiting"
        self._ahead: deque[tuple[int, Future[bytes]]] = deque()  # (start, range), in order
        self._ahead_from = -1
        self._ahead_next = 0  # start of the next range to ask for
        self._ahead_end = -1  # where a range came back short: the object ends there
        self._ahead_pool: ThreadPoolExecutor | None = None
        self._ahead_pid = 0
        self._stopped = threading.Event()
        self._chunk = b""
        self._chunk_start = 0
        self._in_order = True  # every byte read so far was read in order from 0
        self._digest: Any = None  # running checksum of those bytes
        _retry_streaming(uri, self._open)
        if self.size <= READ_AHEAD_MIN_PARTS * self.part_size or self.max_concurrency < 2:
            self._ahead_state = "off"
        elif _read_through.get():
            self._start_ahead()  # the ranges now, the first part from the GET just opened

    def _open(self) -> None:
        params: dict[str, Any] = {"Bucket": self._bucket, "Key": self._key}
        if self._pos:
            params["Range"] = f"bytes={self._pos}-"
        response = call(self.uri, "get_object", **params)
        if self.size < 0:
            content_range = response.get("ContentRange")
            if content_range and "/" in content_range:
                self.size = int(content_range.rsplit("/", 1)[1])
            else:
                self.size = int(response["ContentLength"])
            self._etag = response.get("ETag")
            for member in _CHECKSUMS:
                value = response.get(member)
                if value and "-" not in value:  # not a composite (per-part) checksum
                    self._checksum = (member, value)
                    break
        self._body = response["Body"]
        self._body_pos = self._pos

    def _drop_body(self) -> None:
        if self._body is not None:
            self._body.close()
        self._body = None
        self._body_pos = -1

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            target = offset
        elif whence == io.SEEK_CUR:
            target = self._pos + offset
        elif whence == io.SEEK_END:
            target = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if target < 0:
            raise ValueError(f"negative seek position {target}")
        if target != self._pos:
            self._stop_ahead()
            self._in_order = False
            self._digest = None
        self._pos = target
        return target

    # -- read-ahead

    def _start_ahead(self) -> None:
        self._ahead_state = "on"
        self._ahead_from = self._ahead_next = max(self.part_size, self._pos)
        self._ahead_pool = ThreadPoolExecutor(self.max_concurrency, "imgfmt-s3-range")
        self._ahead_pid = os.getpid()
        if self._pos >= self._ahead_from:
            self._drop_body()
        self._fill()

    def _fill(self) -> None:
        """Ask for ranges until ``max_concurrency`` are fetched or waiting."""
        assert self._ahead_pool is not None
        limit = self.size if self._ahead_end < 0 else self._ahead_end
        while len(self._ahead) < self.max_concurrency and self._ahead_next < limit:
            start = self._ahead_next
            end = min(start + self.part_size, self.size)
            future = self._ahead_pool.submit(
                _get_range, self.uri, start, end, self._etag, self._stopped
            )
            self._ahead.append((start, future))
            self._ahead_next = end

    def _stop_ahead(self) -> None:
        """End the read-ahead for good: drop the ranges, stop those being fetched."""
        if self._ahead_state == "on":
            self._stopped.set()
            pool, self._ahead_pool = self._ahead_pool, None
            if pool is not None and self._ahead_pid == os.getpid():
                pool.shutdown(wait=False, cancel_futures=True)
            self._ahead.clear()
            self._chunk = b""
        self._ahead_state = "off"

    def _read_ahead(self, wanted: int) -> bytes:
        """Up to ``wanted`` bytes at ``_pos`` (at or past ``_ahead_from``) from the ranges."""
        offset = self._pos - self._chunk_start
        if not 0 <= offset < len(self._chunk):
            if self._ahead_end >= 0 and self._pos >= self._ahead_end:
                return b""  # the object shrank while we read it
            self._chunk = b""  # let it go before the next range arrives
            if not self._ahead:
                self._fill()
            start, future = self._ahead.popleft()
            assert start == self._pos, (start, self._pos)
            try:
                chunk = future.result()
            except BaseException:
                self._stop_ahead()
                raise
            if start + len(chunk) < min(start + self.part_size, self.size):
                self._ahead_end = start + len(chunk)  # short: the object ends there
                for _start, later in self._ahead:
                    later.cancel()
                self._ahead.clear()
            else:
                self._fill()
            self._chunk, self._chunk_start, offset = chunk, start, 0
            if not chunk:
                return b""
        return self._chunk[offset : offset + wanted]

    # -- reading

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if not len(view) or self._pos >= self.size:
            return 0
        if self._ahead_state == "on" and self._ahead_pid != os.getpid():
            # Forked: the parent's threads are not here; go on with one stream.
            self._ahead_pool = None
            self._ahead.clear()
            self._ahead_state = "off"
        if self._ahead_state == "on" and self._pos >= self._ahead_from:
            data = self._read_ahead(len(view))
        else:
            wanted = len(view)
            if self._ahead_state == "on":
                wanted = min(wanted, self._ahead_from - self._pos)

            def attempt() -> bytes:
                if self._body is None or self._body_pos != self._pos:
                    self._drop_body()
                    self._open()
                try:
                    return _read_body(self.uri, self._body, wanted)
                except _StreamBroken:
                    self._drop_body()
                    raise

            data = _retry_streaming(self.uri, attempt)
        if not data and self._pos < self.size:  # the object shrank while we read it
            self._drop_body()
            return 0
        view[: len(data)] = data
        self._account(self._pos, data)
        self._pos += len(data)
        self._body_pos = self._pos if self._body is not None else -1
        if self._ahead_state == "on" and self._pos == self._ahead_from:
            self._drop_body()  # the first part is read: the ranges go on from here
        elif self._ahead_state == "waiting" and self._pos >= READ_AHEAD_TRIGGER and self._in_order:
            self._start_ahead()
        return len(data)

    def _account(self, position: int, data: bytes) -> None:
        """Feed the full-object checksum with bytes read in order from the start; check it
        at the end when the object was read through ranged GETs (which carry none)."""
        if self._checksum is None:
            return
        member = self._checksum[0]
        start, update, final = _CHECKSUMS[member]
        if position == 0 and self._in_order and self._ahead_state != "off":
            self._digest = start()
        if self._digest is None:
            return
        self._digest = update(self._digest, data)
        if position + len(data) < self.size or self._ahead_state != "on":
            return
        got = base64.b64encode(final(self._digest)).decode()
        self._digest = None
        if got != self._checksum[1]:
            raise StorageError(
                f"the bytes received do not match the object's checksum ({member[8:]}: "
                "damaged on the way)",
                path=self.uri,
                hint="run again; if it keeps happening, check the network and any proxy "
                "between here and S3",
            )

    def close(self) -> None:
        if not self.closed:
            self._drop_body()
            self._stop_ahead()
        super().close()


# --------------------------------------------------------------------------- writing


def put_bytes(uri: str, data: bytes) -> None:
    """One PutObject (with :func:`object_args`): the object appears whole, or not at all."""
    bucket, key = split_uri(uri)
    call(uri, "put_object", Bucket=bucket, Key=key, Body=data, **object_args())


def delete(uri: str) -> None:
    bucket, key = split_uri(uri)
    call(uri, "delete_object", Bucket=bucket, Key=key)


class Writer(io.BufferedIOBase):
    """Write one object as a multipart upload while it is written, several parts at once.

    Bytes gather in a buffer; each time it holds a part (``part_size``, at least 5 MiB) that
    part is handed to this writer's own pool of ``max_concurrency`` threads
    (:data:`DEFAULT_MAX_CONCURRENCY`, from the settings) and sent as an UploadPart (the
    upload is created with the first part). When that many parts are in flight, ``write``
    waits for one to finish. Memory is therefore bounded whatever the object's size: at most
    ``max_concurrency`` parts being sent plus the one being filled (and the largest single
    write), ``(N + 1) x part_size``: 88 MiB with 10 parts of 8 MiB, 11 MiB sent one at a time
    (``max_concurrency=1``). Parts are numbered in the order written, and recorded in that
    order (ETag and checksum) whatever order they finish in.

    A part that fails (after botocore's retries) fails the writer: its error is raised by the
    next ``write``, ``flush``, ``close``, :meth:`finish`, :meth:`stage` or :meth:`complete`,
    and parts not yet started are dropped. Nothing is visible at the key until
    :meth:`complete`; :meth:`abort` waits for the parts being sent, then aborts the upload (S3
    then drops its parts). An object that never filled a part is one PutObject in
    :meth:`complete`.

    The pool is the writer's own, not the process's :func:`executor`: a commit completes its
    uploads from that pool's threads (``storage._publish_all``), and a completion that had
    to wait there for its last part would wait on itself once the pool is full. Its threads
    start with the first part and end when the writer is completed, staged, aborted or
    closed. A process forked while parts are in flight inherits the pool object but not its
    threads: the writer refuses to go on there (a worker writes its own outputs).

    ``close`` only closes the file object (after the parts in flight have ended): it neither
    completes nor aborts.
    """

    def __init__(
        self, uri: str, part_size: int | None = None, max_concurrency: int | None = None
    ) -> None:
        super().__init__()
        self.uri = uri
        self._bucket, self._key = split_uri(uri)
        self.part_size = part_size or _settings.part_size
        self.max_concurrency = max_concurrency or _settings.max_concurrency
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._sent: list[Future[dict[str, Any]]] = []  # every part, in part-number order
        self._in_flight: set[Future[dict[str, Any]]] = set()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0
        self._failure: BaseException | None = None
        self.bytes_written = 0
        self.done = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self.closed or self.done:
            raise ValueError("write to a finished S3 writer")
        self._check()
        size = len(memoryview(data).cast("B"))
        self._buffer += data
        self.bytes_written += size
        while len(self._buffer) >= self.part_size:
            self._send_part(self.part_size)
        return size

    def flush(self) -> None:
        if not self.done:
            self._check()

    def _check(self) -> None:
        """Raise the error of a part that failed (once it did, every later call raises it)."""
        if self._failure is None:
            self._settle(len(self._in_flight))
        if self._failure is not None:
            raise self._failure
        if self._in_flight and self._pool_pid != os.getpid():
            raise StorageError(
                "an S3 upload cannot go on in a process forked while its parts were in flight",
                path=self.uri,
            )

    def _settle(self, room: int) -> None:
        """Wait until at most ``room`` parts are in flight; a failed part fails the writer."""
        while True:
            ended = {future for future in self._in_flight if future.done()}
            self._in_flight -= ended
            for future in ended:
                error = None if future.cancelled() else future.exception()
                if error is not None and self._failure is None:
                    self._failure = error
                    for queued in self._in_flight:  # not started yet: not worth sending
                        queued.cancel()
            if self._failure is not None:
                raise self._failure
            if len(self._in_flight) <= room:
                return
            wait(self._in_flight, return_when=FIRST_COMPLETED)

    def _send_part(self, size: int | None = None) -> None:
        """Hand the first ``size`` buffered bytes (all if None) to the pool as the next part,
        once fewer than ``max_concurrency`` parts are in flight."""
        self._settle(self.max_concurrency - 1)
        if self._upload_id is None:
            created = call(
                self.uri,
                "create_multipart_upload",
                Bucket=self._bucket,
                Key=self._key,
                **object_args(),
            )
            self._upload_id = created["UploadId"]
        number = len(self._sent) + 1
        if number > MAX_PARTS:
            raise StorageError(f"more than {MAX_PARTS} parts", path=self.uri)
        end = len(self._buffer) if size is None else size
        with memoryview(self._buffer) as view:
            body = bytes(view[:end])  # one copy (a bytearray slice would make two)
        del self._buffer[:end]
        future = self._executor().submit(self._upload_part, self._upload_id, number, body)
        self._sent.append(future)
        self._in_flight.add(future)
        if number % PARTS_PER_SIZE_STEP == 0:
            self.part_size *= 2

    def _upload_part(self, upload_id: str, number: int, body: bytes) -> dict[str, Any]:
        """One UploadPart (in a pool thread); the part as CompleteMultipartUpload lists it."""
        checksum = {"ChecksumAlgorithm": CHECKSUM_ALGORITHM} if sends_checksums() else {}
        response = call(
            self.uri,
            "upload_part",
            Bucket=self._bucket,
            Key=self._key,
            UploadId=upload_id,
            PartNumber=number,
            Body=body,
            **checksum,
        )
        part = {"ETag": response["ETag"], "PartNumber": number}
        if response.get(CHECKSUM_MEMBER):  # S3 wants each part's checksum at completion
            part[CHECKSUM_MEMBER] = response[CHECKSUM_MEMBER]
        return part

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None or self._pool_pid != os.getpid():
            # Made again in a forked process: the parent's threads are not there.
            self._pool = ThreadPoolExecutor(self.max_concurrency, "imgfmt-s3-part")
            self._pool_pid = os.getpid()
        return self._pool

    def _stop_pool(self) -> None:
        """Drop the parts not started, wait for those being sent, end the threads."""
        pool, self._pool = self._pool, None
        if pool is not None and self._pool_pid == os.getpid():
            pool.shutdown(wait=True, cancel_futures=True)

    def _all_parts(self) -> list[dict[str, Any]]:
        """Every part, once all have ended (in part-number order)."""
        try:
            self._settle(0)
        finally:
            self._stop_pool()
        return [future.result() for future in self._sent]

    @property
    def parts(self) -> int:
        return len(self._sent)

    def finish(self) -> None:
        """Upload what is left as the last part (if a multipart upload was started) and wait
        for every part, so that :meth:`complete` only has to make the object appear."""
        if self.done:
            return
        self._check()
        if self._upload_id is not None:
            if self._buffer:
                self._send_part()
            self._all_parts()

    def complete(self) -> None:
        """Make the object exist: complete the multipart upload, or put the object whole."""
        if self.done:
            return
        if self._upload_id is None:
            put_bytes(self.uri, bytes(self._buffer))
        else:
            self.finish()
            complete_upload(self.uri, self._upload_id, self._all_parts())
        self._buffer = bytearray()
        self.done = True

    def stage(self) -> tuple[str, list[dict[str, Any]]]:
        """Upload everything written as parts of a multipart upload (started now if no part
        was full yet), wait for every part, and return ``(upload_id, parts)``: what
        :func:`complete_upload` needs to make the object appear, from any process. The object
        stays invisible."""
        self._check()
        if self._upload_id is None or self._buffer:
            self._send_part()
        parts = self._all_parts()
        assert self._upload_id is not None
        self.done = True
        return self._upload_id, parts

    def abort(self) -> None:
        """Drop everything written: abort the multipart upload, if one was started (after
        the parts being sent have ended: S3 may keep a part that arrives after the abort)."""
        self._buffer = bytearray()
        self._stop_pool()
        if self.done:
            return
        self.done = True
        if self._upload_id is not None:
            call(
                self.uri,
                "abort_multipart_upload",
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
            )

    def close(self) -> None:
        if self.closed:
            return
        try:
            if not self.done and self._failure is None:
                with contextlib.suppress(StorageError):  # raised below, once the pool ended
                    self._settle(0)
        finally:
            self._stop_pool()
            super().close()
        if self._failure is not None and not self.done:
            raise self._failure


def complete_upload(uri: str, upload_id: str, parts: list[dict[str, Any]]) -> None:
    """Complete a multipart upload staged elsewhere (:meth:`Writer.stage`); ``parts`` as
    the writer recorded them (with each part's checksum)."""
    bucket, key = split_uri(uri)
    call(
        uri,
        "complete_multipart_upload",
        Bucket=bucket,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": parts},
    )


def abort_upload(uri: str, upload_id: str) -> None:
    """Abort one multipart upload; one already completed or aborted is no error."""
    bucket, key = split_uri(uri)
    try:
        client().abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except _boto_errors() as err:
        code = getattr(err, "response", {}).get("Error", {}).get("Code")
        if code not in ("NoSuchUpload", "404"):
            raise wrap_error(err, uri) from err


def uploads_under(prefix: str) -> Iterator[tuple[str, str]]:
    """``(uri, upload id)`` of every multipart upload in progress to a key that starts
    with ``prefix``'s key."""
    bucket, key = split_uri(prefix)
    params: dict[str, Any] = {"Bucket": bucket, "Prefix": key}
    while True:
        page = call(prefix, "list_multipart_uploads", **params)
        for upload in page.get("Uploads", ()):
            yield f"{SCHEME}{bucket}/{upload['Key']}", upload["UploadId"]
        if not page.get("IsTruncated"):
            return
        params["KeyMarker"] = page.get("NextKeyMarker", "")
        params["UploadIdMarker"] = page.get("NextUploadIdMarker", "")


def copy(source: str, target: str) -> None:
    """Copy one object to another key of the same endpoint, server side (multipart copy
    for large objects: boto3's managed copy), written as every new object is
    (:func:`object_args`: a copy would otherwise take the bucket's defaults)."""
    bucket, key = split_uri(source)
    target_bucket, target_key = split_uri(target)
    _forget_sizes()  # boto3's managed copy does not go through call()
    try:
        client().copy(
            {"Bucket": bucket, "Key": key}, target_bucket, target_key, ExtraArgs=object_args()
        )
    except _boto_errors() as err:
        response = getattr(err, "response", None)  # a ClientError's
        code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
        if code in _ARCHIVED:  # written so by --storage-class: name the cause, not a restore
            raise StorageError(
                f"cannot rename {source} here: S3 copies no object of storage class "
                f"{_settings.storage_class or 'GLACIER or DEEP_ARCHIVE'} (outputs are renamed "
                "by a server-side copy when their final name is known only at the end, as "
                "--shard-size shards)",
                path=target,
                hint="write with --storage-class GLACIER_IR, or archive later with a bucket "
                "lifecycle rule",
            ) from err
        raise wrap_error(err, target, writing=True) from err
    finally:
        _forget_sizes()


__all__ = [
    "CANNED_ACLS",
    "CHECKSUM_ALGORITHM",
    "DEFAULT_MAX_CONCURRENCY",
    "DEFAULT_PART_SIZE",
    "MIN_PART_SIZE",
    "REQUEST_PAYERS",
    "SSE_ALGORITHMS",
    "STORAGE_CLASSES",
    "NotFound",
    "Reader",
    "S3Settings",
    "Writer",
    "configure",
    "get_bytes",
    "get_many",
    "is_s3",
    "list_keys",
]
