"""Listeners with their security protocols, TLS and SASL (docs/security.md)."""
