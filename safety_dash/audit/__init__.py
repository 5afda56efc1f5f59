"""The append-only audit trail (:mod:`safety_dash.audit.trail`): record an action, verify the chain, export it."""

from safety_dash.audit.trail import ACTIONS, ChainBreak, export_events, record_event, verify_chain

__all__ = ["ACTIONS", "ChainBreak", "export_events", "record_event", "verify_chain"]
