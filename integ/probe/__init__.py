"""The integration test probe Lambda (deployed with the integ stack only)."""
