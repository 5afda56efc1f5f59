-- Alerts of a study (optionally one status), newest first, with the cut that fired them and their email's state.
SELECT a.id AS alert_id, a.study_id, a.rule_id, a.kind, a.delivery, a.title, a.summary, a.status,
       a.condition_active, a.run_id, r.cutoff, a.last_run_id, a.alert_key, a.episode, a.scope, a.evidence,
       a.view_path, a.created_at, a.acknowledged_by, a.acknowledged_role, a.acknowledged_at, a.ack_comment,
       a.resolved_at, a.resolved_run_id,
       COALESCE(d.status, o.status) AS email_status, COALESCE(d.sent_at, o.sent_at) AS email_sent_at,
       COALESCE(d.attempts, o.attempts) AS email_attempts, COALESCE(d.last_error, o.last_error) AS email_error
FROM alerts a
JOIN ingestion_runs r ON r.id = a.run_id
LEFT JOIN alert_outbox o ON o.alert_id = a.id
LEFT JOIN alert_outbox d ON d.id = o.digest_id
WHERE a.study_id = :study_id
  AND (CAST(:status AS VARCHAR(16)) IS NULL OR a.status = :status)
ORDER BY a.created_at DESC, a.id DESC
