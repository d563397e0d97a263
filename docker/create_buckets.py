"""Create the S3 buckets the compose stack uses; the `minio-init` service of docker-compose.yaml runs it.

    python create_buckets.py models mlflow [--wait 120]

Reads boto3's standard environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_DEFAULT_REGION
and AWS_ENDPOINT_URL for MinIO), the same variables the model server reads. What a caller can
rely on: it waits up to `--wait` seconds for the endpoint to answer, a bucket that exists already
is left alone (running it twice is safe), and it exits 0 only when every bucket exists.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

log = logging.getLogger("create_buckets")


def _client():
    import boto3

    # AWS_ENDPOINT_URL is read by boto3 itself; passing it explicitly keeps older botocore working.
    return boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)


def wait_for_endpoint(client, timeout_s: float) -> None:
    """Return once the S3 API answers a ListBuckets; SystemExit after timeout_s."""
    from botocore.exceptions import BotoCoreError, ClientError

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            client.list_buckets()
            return
        except ClientError as exc:
            # An authorisation error will not go away by waiting: say so at once.
            code = exc.response.get("Error", {}).get("Code", "")
            raise SystemExit(
                f"the S3 endpoint {client.meta.endpoint_url} refused ListBuckets ({code}); check "
                "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY against MINIO_ROOT_USER / MINIO_ROOT_PASSWORD"
            ) from None
        except BotoCoreError as exc:
            if time.monotonic() >= deadline:
                endpoint = client.meta.endpoint_url
                raise SystemExit(
                    f"the S3 endpoint {endpoint} did not answer within {timeout_s:.0f}s: {exc}"
                ) from None
            log.info("waiting for %s (%s)", client.meta.endpoint_url, type(exc).__name__)
            time.sleep(1.0)


def ensure_buckets(client, buckets: list[str]) -> list[str]:
    """Create the buckets that are missing; returns the names it created."""
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    created = []
    for bucket in buckets:
        if bucket in existing:
            log.info("bucket %s exists", bucket)
            continue
        try:
            client.create_bucket(Bucket=bucket)
        except client.exceptions.BucketAlreadyOwnedByYou:
            pass  # created by a concurrent run between our listing and now
        log.info("created bucket %s", bucket)
        created.append(bucket)
    return created


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("buckets", nargs="+", help="bucket names")
    parser.add_argument("--wait", type=float, default=120.0, help="seconds to wait for the endpoint")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    client = _client()
    wait_for_endpoint(client, args.wait)
    ensure_buckets(client, args.buckets)
    log.info("buckets ready at %s: %s", client.meta.endpoint_url, ", ".join(args.buckets))
    return 0


if __name__ == "__main__":
    sys.exit(main())
