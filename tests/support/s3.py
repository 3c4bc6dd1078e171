"""An S3 API for tests, served by moto in the test process, and the options that reach it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

S3_BACKEND = "storages.backends.s3.S3Storage"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """An S3 API on a free loopback port, served by moto in this process."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def s3_options(endpoint: str, bucket: str, **extra) -> dict:
    """S3Storage's options for one bucket of the test endpoint."""
    return {"bucket_name": bucket, "endpoint_url": endpoint, "access_key": "testing", "secret_key": "testing",
            "region_name": "us-east-1", **extra}


def s3_client(endpoint: str):
    """A boto3 client of the test endpoint."""
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")


def s3_bucket_create(endpoint: str, prefix: str = "bucket") -> str:
    """A new, empty bucket; its name."""
    bucket = f"{prefix}-{uuid.uuid4().hex[:12]}"
    s3_client(endpoint).create_bucket(Bucket=bucket)
    return bucket
