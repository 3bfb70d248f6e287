"""Coordination store backends: etcd (multi-host), sqlite (one host), memory (tests)."""
