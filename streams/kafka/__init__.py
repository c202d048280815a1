"""Kafka at the edges: client options and topics, for every process that talks to a broker."""
