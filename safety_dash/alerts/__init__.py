"""Threshold alerts: rules as data, evaluation after each cut, an outbox delivered by SMTP."""
