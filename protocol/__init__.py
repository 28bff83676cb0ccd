"""Kafka wire protocol: framing, request/response codecs and record batches.

Nothing in this package knows about Redis or about the gateway's storage.
"""
