"""The worker-watcher benchmark harness: ceilings, peers and the daemon, side by side.

Run through ``bench/run.sh``, which builds the agents and ceilings and installs the
peers first. Standard library only, so it runs on the system Python.
"""
