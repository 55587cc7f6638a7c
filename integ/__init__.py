"""The real-account integration test (integ-runner app, its stack additions and probe); see docs/integ.md."""
