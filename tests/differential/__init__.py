"""The differential fuzzer: the memory engine against Apache CouchDB (``make fuzz``)."""
