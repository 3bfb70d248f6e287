"""An S3-compatible object store (AWS S3, MinIO, Ceph RGW…) behind the storage port.

boto3 does the protocol: request signing, retries with exponential backoff and jitter
(botocore's ``standard`` mode retries 5xx answers, throttling and timeouts), connect
and read timeouts so that a stalled store fails instead of hanging archive_command.
On top of it this module adds what the archive's contract needs:

- **never replace**: ``put_new`` is a conditional write (``If-None-Match: *``); a
  store that does not support it answers 501 and the write falls back to
  HEAD-then-PUT, which is safe here because every key the archive writes once is
  unique (a WAL key carries the file's sha256, a backup's objects carry its label);
- **checksums checked server-side**: every PUT (and every part of a multipart upload)
  sends the SHA-256 of its bytes; the store verifies it before it stores the object
  and returns it, and the returned value is compared with ours; reads ask for it back
  (``ChecksumMode``) and botocore checks the body against it;
- **multipart** for objects above ``MULTIPART_THRESHOLD``, each part checksummed, an
  upload that fails is aborted so that no orphan parts are billed.

The code knows nothing about the server it talks to: a test server on loopback is
reached like AWS, through ``endpoint``.
"""

from __future__ import annotations

import base64
import configparser
import contextlib
import errno
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgherd.archive.storage import StorageError, StoredObject, read_private

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

MULTIPART_THRESHOLD = 16 * 1024 * 1024
PART_SIZE = 8 * 1024 * 1024  # S3 wants ≥ 5 MiB for every part but the last


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # "" or ends with "/"

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """``s3://bucket/some/prefix`` → bucket and ``some/prefix/``."""
        if not url.startswith("s3://"):
            raise ValueError(f"{url!r} is not an s3:// URL")
        bucket, _, prefix = url[len("s3://") :].partition("/")
        if not bucket:
            raise ValueError(f"{url!r} names no bucket")
        prefix = prefix.strip("/")
        return cls(bucket, f"{prefix}/" if prefix else "")

    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}".rstrip("/")


@dataclass(frozen=True)
class S3Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


def read_credentials(path: Path, profile: str = "default") -> S3Credentials:
    """An AWS-style credentials file (INI: ``[default]``, ``aws_access_key_id``,
    ``aws_secret_access_key``, optional ``aws_session_token``), mode 0600 or stricter:
    secrets live in files the way the passfile does, never in pgherd.yaml or argv."""
    text = read_private(path, "the credentials file").decode(errors="replace")
    parser = configparser.ConfigParser()
    try:
        parser.read_string(text)
        section = parser[profile]
        return S3Credentials(
            section["aws_access_key_id"].strip(),
            section["aws_secret_access_key"].strip(),
            (section.get("aws_session_token") or "").strip() or None,
        )
    except (configparser.Error, KeyError) as exc:
        raise StorageError(
            errno.EINVAL,
            f"the credentials file {path} has no [{profile}] aws_access_key_id and "
            f"aws_secret_access_key ({exc})",
        ) from None


def _sha256_b64(data: bytes | memoryview) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


class S3Storage:
    """One bucket and prefix of an S3-compatible store."""

    def __init__(
        self,
        location: S3Location,
        credentials: S3Credentials,
        endpoint: str | None = None,
        region: str = "us-east-1",
        max_attempts: int = 5,
        connect_timeout: float = 5,
        read_timeout: float = 30,
    ) -> None:
        import boto3  # lazily: wal fetch from a local repository does not pay for it
        from botocore.config import Config

        self.location = location
        self.endpoint = endpoint
        self._client: S3Client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            region_name=region,
            aws_access_key_id=credentials.access_key_id,
            aws_secret_access_key=credentials.secret_access_key,
            aws_session_token=credentials.session_token,
            config=Config(
                retries={"mode": "standard", "max_attempts": max_attempts},
                connect_timeout=connect_timeout,
                read_timeout=read_timeout,
                # MinIO and most S3-compatible stores want path-style addressing
                s3={"addressing_style": "path" if endpoint else "auto"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_supported",
                max_pool_connections=32,
            ),
        )
        self._conditional = True  # If-None-Match supported, until the store says not

    def describe(self) -> str:
        return self.location.url()

    def _key(self, key: str) -> str:
        if key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"bad storage key {key!r}")
        return self.location.prefix + key

    def _fail(self, exc: Exception, what: str, key: str) -> StorageError:
        code, status = _error_code(exc)
        reason = f"{code} (HTTP {status})" if status else str(exc).splitlines()[0]
        number = errno.ENOSPC if code in _FULL else errno.EIO
        return StorageError(number, f"{what} {self.describe()}/{key} failed: {reason}")

    # ---- writing ---------------------------------------------------------------------

    def put_new(self, key: str, data: bytes) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        full = self._key(key)
        try:
            if len(data) > MULTIPART_THRESHOLD:
                if self._exists(full):
                    return False
                self._multipart(full, data)
                return True
            return self._put(full, data)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, "storing", key) from None

    def _put(self, full: str, data: bytes) -> bool:
        from botocore.exceptions import ClientError

        digest = _sha256_b64(data)
        args: dict[str, Any] = {
            "Bucket": self.location.bucket,
            "Key": full,
            "Body": data,
            "ChecksumAlgorithm": "SHA256",
            "ChecksumSHA256": digest,
        }
        if self._conditional:
            try:
                answer = self._client.put_object(**args, IfNoneMatch="*")
            except ClientError as exc:
                code, status = _error_code(exc)
                if code in ("PreconditionFailed", "ConditionalRequestConflict") or status == 412:
                    return False
                if status != 501 and code != "NotImplemented":
                    raise
                self._conditional = False  # an older store: HEAD first (keys are unique)
            else:
                self._check_digest(full, answer.get("ChecksumSHA256"), digest)
                return True
        if self._exists(full):
            return False
        answer = self._client.put_object(**args)
        self._check_digest(full, answer.get("ChecksumSHA256"), digest)
        return True

    def _multipart(self, full: str, data: bytes) -> None:
        bucket = self.location.bucket
        upload = self._client.create_multipart_upload(
            Bucket=bucket, Key=full, ChecksumAlgorithm="SHA256"
        )
        upload_id = upload["UploadId"]
        parts: list[CompletedPartTypeDef] = []
        try:
            view = memoryview(data)
            for number, start in enumerate(range(0, len(data), PART_SIZE), 1):
                chunk = view[start : start + PART_SIZE]
                digest = _sha256_b64(chunk)
                answer = self._client.upload_part(
                    Bucket=bucket,
                    Key=full,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=bytes(chunk),
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=digest,
                )
                self._check_digest(full, answer.get("ChecksumSHA256"), digest)
                parts.append(
                    {"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": digest}
                )
            self._client.complete_multipart_upload(
                Bucket=bucket, Key=full, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            # the first failure is the one to report
            with contextlib.suppress(Exception):
                self._client.abort_multipart_upload(Bucket=bucket, Key=full, UploadId=upload_id)
            raise

    def _check_digest(self, full: str, returned: str | None, sent: str) -> None:
        if returned is not None and returned != sent:
            raise StorageError(
                errno.EIO,
                f"{self.describe()} stored {full} with checksum {returned}, not {sent}",
            )

    def _exists(self, full: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._client.head_object(Bucket=self.location.bucket, Key=full)
        except ClientError as exc:
            if _error_code(exc)[1] == 404:
                return False
            raise
        return True

    # ---- reading ---------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self._client.get_object(
                Bucket=self.location.bucket, Key=self._key(key), ChecksumMode="ENABLED"
            )
            return answer["Body"].read()
        except ClientError as exc:
            if _error_code(exc)[0] in ("NoSuchKey", "404"):
                return None
            raise self._fail(exc, "reading", key) from None
        except BotoCoreError as exc:
            # includes botocore's FlexibleChecksumError: the body does not match
            raise self._fail(exc, "reading", key) from None

    def get_range(self, key: str, start: int, length: int) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self._client.get_object(
                Bucket=self.location.bucket,
                Key=self._key(key),
                Range=f"bytes={start}-{start + length - 1}",
            )
            data = answer["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, "reading", key) from None
        if len(data) != length:
            raise StorageError(errno.EIO, f"{self.describe()}/{key}: short ranged read")
        return data

    def list(self, prefix: str) -> list[StoredObject]:
        from botocore.exceptions import BotoCoreError, ClientError

        found = []
        cut = len(self.location.prefix)
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.location.bucket,
                Prefix=self._key(prefix) if prefix else self.location.prefix,
            )
            for page in pages:
                for item in page.get("Contents", []):
                    key = item["Key"][cut:]
                    if key.rsplit("/", 1)[-1].startswith("."):
                        continue
                    found.append(StoredObject(key, item["Size"], item["LastModified"].timestamp()))
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, "listing", prefix) from None
        return sorted(found, key=lambda o: o.key)

    def delete(self, key: str) -> int:
        from botocore.exceptions import BotoCoreError, ClientError

        full = self._key(key)
        try:
            head = self._client.head_object(Bucket=self.location.bucket, Key=full)
        except ClientError as exc:
            if _error_code(exc)[1] == 404:
                return 0
            raise self._fail(exc, "deleting", key) from None
        except BotoCoreError as exc:
            raise self._fail(exc, "deleting", key) from None
        try:
            self._client.delete_object(Bucket=self.location.bucket, Key=full)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(exc, "deleting", key) from None
        return int(head.get("ContentLength", 0))


# What stores answer when they are out of space or quota.
_FULL = ("QuotaExceeded", "XMinioStorageFull", "InsufficientStorage", "EntityTooLarge")


def _error_code(exc: Exception) -> tuple[str, int | None]:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return type(exc).__name__, None
    code = str(response.get("Error", {}).get("Code", ""))
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code, int(status) if status is not None else None
