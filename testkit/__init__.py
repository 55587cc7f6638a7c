"""Support for the tests, the benchmarks and the Worker's test fixture: never shipped, never imported by the product.

- ``testkit.moto``: the one way to start moto as a server on 127.0.0.1 (in this process or in its own).
- ``testkit.faults``: endpoints that misbehave on purpose (a closed port, a delaying proxy, a silent endpoint).
- ``testkit.events``: the analytics events (one set of builders) and the Lambda events built from them, a fake
  Lambda context, readers for the processor's logs and EMF metrics.
- ``testkit.tables``: the events table as the synthesized template defines it (moto in-process).
- ``testkit.ops_scenarios``: the CLI against silent endpoints, the scenarios and their runner (a test asserts them,
  a benchmark times them).

The local stack (``local/``) is a product of its own (``make local``, ``make demo``); this package may use it,
never the other way round. Nothing here imports ``tests``: the tests, ``bench/`` and ``edge/test`` import this.
"""
