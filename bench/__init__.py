"""The bridge's benchmark: ``python -m bench`` (see the "Benchmark" section of the README).

One run starts PostgreSQL, Synapse on it, the bridge and the simulated remote side, and
measures each figure against a reference measured in the same run: remote -> Matrix against
sending straight to Synapse, Matrix -> remote against a bare appservice, the bridge's CPU
against Synapse's, and start-up, memory and look-ups with many portals.
"""
