"""The gateway: a Kafka broker whose log is Redis Streams."""
