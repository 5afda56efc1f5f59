"""Tables owned by the alerts package (alerts, acknowledgements, the email outbox)."""
