-- The newest audit event of one action about one study (e.g. the last rule file loaded), if any.
SELECT id, occurred_at, actor, after
FROM audit_events
WHERE action = :action AND study_id = :study_id
ORDER BY id DESC
LIMIT 1
