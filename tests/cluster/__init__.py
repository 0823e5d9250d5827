"""The cluster suite: couchmapper on a local 3-node Apache CouchDB cluster (make test-cluster)."""
