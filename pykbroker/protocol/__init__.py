"""Sans-IO Kafka protocol: primitives, spec-driven codec, framing, record batches."""
