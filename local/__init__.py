"""The embedded default: the synthesized stack running on a local moto server, end to end.

- ``local.emulator``: the template deployed into moto, the event-source-mapping emulator, the processor.
- ``local.demo``: the seed's chatbot, the load generator, ``make demo`` (``python -m local.demo``).
- ``local.serve``: ``make local``, the emulator and the demo chatbot kept running until Ctrl-C.

Imports nothing of ``tests``, ``bench`` or ``testkit``: they use it, never the other way round.
"""
