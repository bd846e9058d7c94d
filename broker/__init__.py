"""Broker side: mosquitto configuration tooling and the demo's embedded broker."""
