"""delivery: violation documents to people — MQTT (with Home Assistant discovery) and signed webhooks.

Each sink is its own stage with its own consumer group on the violations stream, so a slow or dead
endpoint never holds back another sink, the publisher or the pipeline."""
