"""The whole local pipeline in one object: the deployed stack, the processor and its poller.

Used by ``make demo``, ``make local``, the end-to-end tests and the benchmark.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from local.emulator.esm import EventSourceMappingEmulator, Handler
from local.emulator.stack import REPO, LocalStack, StackInfo, event_source_enabled
from schema import contract

LAMBDA_DIR = REPO / "lambda_src"  # holds the package chat_processor, as Lambda's /var/task does
PROCESSOR_DIR = LAMBDA_DIR / "chat_processor"
if str(LAMBDA_DIR) not in sys.path:  # on Lambda's path as on pytest's (pyproject's pythonpath); scripts run from the repository
    sys.path.append(str(LAMBDA_DIR))

from chat_processor.handler import Processor, processor_from_environment  # noqa: E402


class _ThreadRoutedStdout(io.TextIOBase):
    """Sends what the processor prints (EMF metrics, JSON logs) to a file, the rest to the console.

    Lambda sends a function's stdout to CloudWatch Logs; locally it would drown the demo's output.
    Only threads registered with :meth:`route` (the poller threads while they run the handler, which writes
    everything in the invoking thread) are redirected.
    """

    def __init__(self, console: IO[str]) -> None:
        self.console = console
        self.routes: dict[int, IO[str]] = {}

    def route(self, sink: IO[str]) -> None:
        self.routes[threading.get_ident()] = sink

    def _sink(self) -> IO[str]:
        return self.routes.get(threading.get_ident(), self.console)

    def write(self, text: str) -> int:
        return self._sink().write(text)

    def flush(self) -> None:
        self.console.flush()
        for sink in list(self.routes.values()):
            sink.flush()


def lambda_environment(info: StackInfo) -> dict[str, str]:
    """The processor function's environment on the local stack: the function's own (from the template) plus
    what the Lambda service adds: the region and the credentials of the function's role (assumed through
    moto's STS, so moto enforces the role's policy), and the local endpoint."""
    env = dict(info.processor_environment)
    env.update(
        AWS_ENDPOINT_URL=info.endpoint_url,
        AWS_REGION=info.region,
        AWS_DEFAULT_REGION=info.region,
        AWS_ACCESS_KEY_ID=info.processor.access_key_id,
        AWS_SECRET_ACCESS_KEY=info.processor.secret_access_key,
        AWS_SESSION_TOKEN=info.processor.session_token or "",
        AWS_LAMBDA_FUNCTION_NAME=info.outputs.get(contract.PROCESSOR_FUNCTION_NAME, "processor"),
    )
    return env


def start_processor(info: StackInfo) -> Processor:
    """The processor as the local stack's Lambda starts it: the function's environment set in this process
    (``LocalPipeline.close`` puts the previous one back), then its cold start (``processor_from_environment``),
    which reads it as Lambda's does."""
    os.environ.update(lambda_environment(info))
    return processor_from_environment()


def _mapping_state(info: StackInfo) -> Callable[[], bool] | None:
    """The mapping's Enabled state as moto's Lambda holds it (``update-event-source-mapping --no-enabled`` stops
    the emulator's polling, as it stops Lambda's), or None when the stack registered no mapping."""
    uuid = info.event_source.get("uuid")
    if not uuid:
        return None
    return lambda: event_source_enabled(uuid, info.region)


class LocalPipeline:
    """Deploy the stack, load the processor and start the emulator; ``close()`` stops everything."""

    def __init__(
        self,
        *,
        template: Path | None = None,
        enforce_iam: bool = True,
        failure_visibility_s: int | None = 1,
        processor_log: Path | None = None,
        port: int | None = None,
    ) -> None:
        self.stack = LocalStack(template, port=port, enforce_iam=enforce_iam)
        self.failure_visibility_s = failure_visibility_s
        self.processor_log = processor_log
        self._info: StackInfo | None = None
        self._esm: EventSourceMappingEmulator | None = None
        self._log_file: IO[str] | None = None
        self._saved_stdout = sys.stdout
        self._saved_env = dict(os.environ)
        self._logger_handler: logging.StreamHandler | None = None
        self._processor: Processor | None = None

    @property
    def info(self) -> StackInfo:
        """The deployed stack; raises before ``start()``."""
        if self._info is None:
            raise RuntimeError("LocalPipeline.info before start(): the stack is not deployed")
        return self._info

    @property
    def esm(self) -> EventSourceMappingEmulator:
        """The running event source mapping emulator; raises before ``start()``."""
        if self._esm is None:
            raise RuntimeError("LocalPipeline.esm before start(): the emulator is not running")
        return self._esm

    @property
    def processor(self) -> Processor:
        """The processor the emulator invokes; raises before ``start()``."""
        if self._processor is None:
            raise RuntimeError("LocalPipeline.processor before start(): the processor is not loaded")
        return self._processor

    def start(self) -> LocalPipeline:
        self._info = self.stack.deploy()
        self._processor = processor = start_processor(self.info)
        handler = processor.handle
        if self.processor_log is not None:
            self._log_file = self.processor_log.open("a", encoding="utf-8")
            router = _ThreadRoutedStdout(sys.stdout)
            sys.stdout = router
            sink = self._log_file
            # The processor's Logger bound the stdout of its first configuration; Lambda's stdout is the router now.
            log_handler = processor.logger.registered_handler
            assert isinstance(log_handler, logging.StreamHandler), "Powertools' Logger writes to a stream"
            log_handler.setStream(router)
            self._logger_handler = log_handler

            def routed(event: dict, context: Any) -> dict | None:
                router.route(sink)
                return handler(event, context)

            target: Handler = routed
        else:
            target = handler
        self._esm = EventSourceMappingEmulator(
            self.info.client("sqs", self.info.processor),
            self.info.events_queue_url,
            target,
            batch_size=self.info.event_source["batch_size"],
            max_concurrency=self.info.event_source["max_concurrency"],
            report_batch_item_failures=self.info.event_source["report_batch_item_failures"],
            function_name=self.info.outputs.get(contract.PROCESSOR_FUNCTION_NAME, "processor"),
            failure_visibility_s=self.failure_visibility_s,
            region=self.info.region,
            enabled=_mapping_state(self.info),
        ).start()
        return self

    def close(self) -> None:
        if self._esm is not None:
            self._esm.stop()
        if self._processor is not None:
            self._processor.close()
        self.stack.close()
        sys.stdout = self._saved_stdout
        if self._logger_handler is not None:
            self._logger_handler.setStream(self._saved_stdout)
        if self._log_file is not None:
            self._log_file.close()
        with contextlib.suppress(Exception):
            os.environ.clear()
            os.environ.update(self._saved_env)

    def __enter__(self) -> LocalPipeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
