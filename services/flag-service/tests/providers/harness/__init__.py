"""Helpers of flag-service's provider end-to-end suite: the server process, the testbed
layout, provider clients, the JS reference evaluator and a context generator."""
