"""Keeping the state across restarts: the store interface, snapshots in SQLite and the journal."""
