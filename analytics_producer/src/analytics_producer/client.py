"""What a logger sends with: its own lean transport (the default), or a boto3 SQS client.

Both send to the region and endpoint :func:`analytics_producer.destination.resolve_destination`
resolved (the same for either), with the credential chain of a boto3 ``Session`` (profiles, roles,
refresh). When a proxy applies to that endpoint (``HTTPS_PROXY``...), the lean transport gives way to
a botocore client, which knows how to go through one.

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

from analytics_producer.destination import Destination
from analytics_producer.transport import SQSTransport


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


def new_transport(destination: Destination, *, session: Any, connect_timeout_s: float, read_timeout_s: float) -> Any:
    """The logger's own sender: an :class:`SQSTransport` to ``destination`` (resolved by :func:`resolve_destination`).

    Returns a botocore client to the same endpoint instead when a proxy applies to it.
    """
    config = client_config(connect_timeout_s, read_timeout_s)
    if _uses_proxy(destination.endpoint_url, config):
        return new_client(region_name=destination.region_name, endpoint_url=destination.endpoint_url, config=config, session=session)
    ca_bundle = None
    with contextlib.suppress(Exception):  # AWS_CA_BUNDLE, else the profile's ca_bundle, as botocore resolves it for the session
        ca_bundle = botocore.session.Session(profile=session.profile_name).get_config_variable("ca_bundle")
    return SQSTransport(
        endpoint_url=destination.endpoint_url,
        region_name=destination.region_name,
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
