"""The demo on top of the emulator: the seed's chatbot (``chatbot``, answering from ``answers``), a load
generator in its own process (``loadgen``) and ``make demo``'s run and printout (``run``; ``python -m local.demo``).
"""
