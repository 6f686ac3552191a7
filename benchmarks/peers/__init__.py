"""Peers: the same waveform workload written with other tools, as a competent user of each would.

Each peer is a script run as its own process by :mod:`benchmarks.e2e`, reads the same binary
frames from the same broker and writes one JSON score record per asset and 1 s window to its
own output topic. ``common.py`` holds what the peers share and nothing of aiotstream, so it also
runs in the Quix Streams virtual environment.
"""
