"""Fakes of external services that the test suite runs on loopback (Twilio's REST API)."""
