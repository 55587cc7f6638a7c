"""How long any one AWS call of the CLI may take: the timeouts and attempts of every client.

An operator runs these commands during an incident, often against an endpoint in trouble. Every
command must end within 20 s with one line when the endpoint accepts connections and never answers
(a hung proxy, a wedged local moto server), so each call is bounded by

    TOTAL_MAX_ATTEMPTS * (CONNECT_TIMEOUT_S + READ_TIMEOUT_S) + backoff (< 1 s after the first attempt)

which is 2 * (3 + 5) + 1 = 17 s at worst, and about 11 s against a silent endpoint (the connect
succeeds at once). The first call a command makes fails this way, so the command ends with it.

``total_max_attempts`` counts attempts, the first one included. botocore's older ``max_attempts``
key in a client ``Config`` counts *retries* (``max_attempts=3`` sends up to 4 requests), unlike the
``max_attempts`` of the shared config file and ``AWS_MAX_ATTEMPTS``, which count attempts
(https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html): this module only
says ``total_max_attempts``. The values here override ``AWS_MAX_ATTEMPTS``, ``AWS_RETRY_MODE`` and
the profile's settings, so an operator's shell cannot turn a dead endpoint into a two-minute wait.

``read_timeout`` is how long the client waits for the next bytes of an answer, not for the whole
answer: a large DynamoDB page that keeps arriving is not cut off. SQS long polling holds a
``ReceiveMessage`` for up to ``WaitTimeSeconds`` before answering, so the DLQ commands' wait
(``dlq.RECEIVE_WAIT_SECONDS``) must stay well below ``READ_TIMEOUT_S``; a test holds them apart.
"""

from __future__ import annotations

from botocore.config import Config

CONNECT_TIMEOUT_S = 3
READ_TIMEOUT_S = 5
# Attempts, the first one included: one retry for a throttle, a 5xx or a timeout, then one line.
TOTAL_MAX_ATTEMPTS = 2
RETRY_MODE = "standard"

CLIENT_CONFIG = Config(
    retries={"mode": RETRY_MODE, "total_max_attempts": TOTAL_MAX_ATTEMPTS},
    connect_timeout=CONNECT_TIMEOUT_S,
    read_timeout=READ_TIMEOUT_S,
)
