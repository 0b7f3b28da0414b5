"""The ground floor every layer shares: stream message contracts, Redis key names, zones, labels,
URL redaction and the error hierarchy. It imports nothing else of maskwatch."""
