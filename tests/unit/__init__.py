"""Unit tests: one component or module alone (under the SDK's mocks where it registers resources)."""
