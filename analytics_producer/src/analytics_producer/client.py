"""What a logger sends with: its own lean transport (the default), or a boto3 SQS client.

The default transport (:mod:`.transport`) is resolved here with botocore's own machinery: the
credential chain of a boto3 ``Session`` (profiles, roles, refresh), the region (given, else the
queue URL's, else the session's) and the endpoint botocore would use (``endpoint_url``,
``AWS_ENDPOINT_URL_SQS``, ``AWS_ENDPOINT_URL``, the config file, else the region's). When a proxy
applies to that endpoint (``HTTPS_PROXY``...), the logger uses a botocore client instead, which
knows how to go through one.

For a botocore client:
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
from urllib.parse import urlsplit

import boto3
import botocore.session
from botocore.config import Config

from analytics_producer.transport import SQSTransport, region_from_queue_url


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
    session: Any = None,
) -> Any:
    """An SQS client from ``session`` when given, else explicit keys when given, else boto3's standard credential chain."""
    if session is None:
        session = boto3.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            aws_session_token=session_token,
            region_name=region_name,
        )
    return session.client("sqs", region_name=region_name, endpoint_url=endpoint_url, config=config)


def _uses_proxy(endpoint_url: str, config: Any) -> bool:
    """Whether botocore would reach ``endpoint_url`` through a proxy (client config, or HTTP(S)_PROXY without NO_PROXY)."""
    if getattr(config, "proxies", None):
        return True
    from botocore.utils import get_environ_proxies

    return bool(get_environ_proxies(endpoint_url).get(urlsplit(endpoint_url).scheme))


def new_transport(
    queue_url: str,
    *,
    session: Any,
    region_name: str | None,
    endpoint_url: str | None,
    connect_timeout_s: float,
    read_timeout_s: float,
) -> Any:
    """The logger's own sender: an :class:`SQSTransport` resolved as botocore would resolve a client.

    A botocore client is built once here, only to resolve the endpoint and region exactly as
    botocore does (it fails here, not later, on a region it cannot use); its request pipeline is
    not used. Returns that client instead when a proxy applies to the endpoint.
    """
    session = session if session is not None else boto3.Session()
    config = client_config(connect_timeout_s, read_timeout_s)
    resolver = session.client("sqs", region_name=region_name or region_from_queue_url(queue_url), endpoint_url=endpoint_url, config=config)
    if _uses_proxy(resolver.meta.endpoint_url, resolver.meta.config):
        return resolver
    ca_bundle = None
    with contextlib.suppress(Exception):  # AWS_CA_BUNDLE, else the profile's ca_bundle, as botocore resolves it for the session
        ca_bundle = botocore.session.Session(profile=session.profile_name).get_config_variable("ca_bundle")
    return SQSTransport(
        endpoint_url=resolver.meta.endpoint_url,
        region_name=resolver.meta.region_name,
        credentials=session.get_credentials(),
        connect_timeout_s=connect_timeout_s,
        read_timeout_s=read_timeout_s,
        ca_bundle=ca_bundle,
    )


def client_for_child(client: Any) -> Any:
    """A forked child's sender from the caller's ``client``: its own connections, the same endpoint and credentials.

    The parent's pooled sockets must not be used by the child. An :class:`SQSTransport` gives a
    fresh one (no connection yet). A boto3 client is kept, after its public ``close()`` drops the
    pooled connections the child inherited (the child's copies of the sockets: the parent's
    connections stay open); botocore opens new ones on the next call, with the client's own
    credential provider (refreshable credentials stay refreshable). Anything else is used as it is.
    """
    if isinstance(client, SQSTransport):
        return client.fresh()
    close = getattr(client, "close", None)
    if callable(close):
        close()
    return client
