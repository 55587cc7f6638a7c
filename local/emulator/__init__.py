"""The emulator: the synthesized template deployed into a moto server on 127.0.0.1 (``stack``, with ``template``
and ``standins`` for what moto does not create), the event-source-mapping emulator running the real processor
(``esm``, ``pipeline``) and the loopback ports it listens on (``ports``).

Kept light: importing the package imports nothing (``local.serve`` checks its ports before moto loads).
"""
