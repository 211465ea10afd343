"""The shared store: several exporters keeping one state in PostgreSQL.

store.py runs each entry's effect in one transaction and keeps this replica's claim;
tracker.py and requests.py are the call tracker and the request counts on it; calls.py and
counters.py read and write the rows of calls, legs, debts, call records and counters;
schema.py holds the numbered migrations of the schema `sipgate_exporter`, replica.py the claim
on a replica's name, connect.py the connections, command.py `sipgate-exporter state migrate`.
README.md, "Running several replicas", gives the operator's view.
"""
