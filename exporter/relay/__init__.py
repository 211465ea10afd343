"""Relay mode: pass sipgate events on to an upstream application and hand back its replies."""
