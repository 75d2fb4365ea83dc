"""Serving: stage a deployment, run the local endpoint, call it, smoke-test it."""
