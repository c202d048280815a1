"""Wire to domain: the event contract and batch decoding, pure (no Kafka, no storage)."""
