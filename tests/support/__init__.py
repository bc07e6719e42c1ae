"""Shared helpers of the tests, not tests themselves: schema validation, chart connections, the HPA model, the
plugin host client, the README's consumer project."""
