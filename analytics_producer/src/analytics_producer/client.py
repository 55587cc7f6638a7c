"""The one boto3 SQS client a logger keeps for its lifetime.

Short connect and read timeouts bound how long one attempt can hold the sender, and botocore makes
exactly one attempt per call (``total_max_attempts=1``): the sender's retry loop owns backoff, so
a failure is counted and reported once, with the same deduplication ids, instead of being retried
twice over. botocore's ``max_attempts`` counts *retries* (``max_attempts=1`` is two attempts);
``total_max_attempts`` counts attempts including the first
(https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html).
"""

from __future__ import annotations

import contextlib
from typing import Any

import boto3
from botocore.config import Config


def client_config(connect_timeout_s: float = 1.0, read_timeout_s: float = 3.0) -> Config:
    """The botocore configuration a logger's client should have (also for a client passed as ``client=``).

    One attempt per call: one ``send_message_batch`` is one request on the wire.
    """
    return Config(
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
        retries={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=2,  # one sender thread: one connection, one spare
    )


def new_client(
    *,
    region_name: str | None,
    endpoint_url: str | None,
    config: Config,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
) -> Any:
    """An SQS client from explicit keys when given, else boto3's standard credential chain."""
    session = boto3.Session(
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        aws_session_token=session_token,
        region_name=region_name,
    )
    return session.client("sqs", region_name=region_name, endpoint_url=endpoint_url, config=config)


def clone_client(client: Any) -> Any:
    """A new client with the same region, endpoint, configuration and credentials.

    Used in a forked child: the parent's client shares its pooled sockets with the child, so the
    child must not use it. Credentials are read from the client itself, so a client the caller
    built with explicit keys keeps them.
    """
    frozen = None
    with contextlib.suppress(Exception):  # botocore internals: fall back to the standard chain
        credentials = client._request_signer._credentials
        frozen = credentials.get_frozen_credentials() if credentials is not None else None
    session = boto3.Session(
        aws_access_key_id=frozen.access_key if frozen else None,
        aws_secret_access_key=frozen.secret_key if frozen else None,
        aws_session_token=frozen.token if frozen else None,
        region_name=client.meta.region_name,
    )
    return session.client("sqs", region_name=client.meta.region_name, endpoint_url=client.meta.endpoint_url, config=client.meta.config)
