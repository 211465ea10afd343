"""The shared store: several exporters keeping one state in PostgreSQL (in progress, issue 16).

So far: connections (connect.py), the versioned schema `sipgate_exporter` (schema.py), the
replica claim (replica.py) and `sipgate-exporter state migrate` (command.py). The design the
tables to come serve: each event is one transaction that locks its call's row (FOR UPDATE),
applies the domain tracker and writes the call and the counters it moved; counters are kept
per replica, and each replica exposes only its own rows, so that sums over `instance` count
every event once; gauges (calls in progress, callbacks owed) come from one leader replica,
the holder of an advisory lock; sweeps of forward graces and expiry take their calls with
FOR UPDATE SKIP LOCKED, so that each call ends once, on whichever replica gets there first.
"""
