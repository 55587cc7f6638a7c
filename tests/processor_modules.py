"""The processor's modules imported for one test package, and put back afterwards.

The Lambda asset is the package ``chat_processor`` (lambda_src/ on the path, as in Lambda). Each package that runs the processor imports them fresh with its own environment, and the
previous ones (another package's) are restored at the end, so packages do not leak into each other.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from local.pipeline import LAMBDA_DIR, import_processor

MODULES = tuple(["chat_processor"] + [f"chat_processor.{name}" for name in ("handler", "models", "store", "invalid", "lake", "transport", "clients", "contract")])


class CurrentStdout:
    """Writes to whatever ``sys.stdout`` is at the time of the write (pytest's capture of the running test)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@contextmanager
def processor_modules() -> Iterator[ModuleType]:
    """The handler module, freshly imported (the environment must be set first); its Logger writes to
    the current stdout, so each test's capture sees its logs."""
    saved = {name: sys.modules.pop(name) for name in MODULES if name in sys.modules}
    inserted = str(LAMBDA_DIR) not in sys.path
    try:
        handler = import_processor()
        handler.logger.registered_handler.stream = CurrentStdout()
        yield handler
    finally:
        for name in MODULES:
            sys.modules.pop(name, None)
        sys.modules.update(saved)
        if inserted and str(LAMBDA_DIR) in sys.path:
            sys.path.remove(str(LAMBDA_DIR))
