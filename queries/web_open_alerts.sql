-- Alerts of a study that are not resolved: open (waiting for a look) or acknowledged.
SELECT status, COUNT(*) AS n
FROM alerts
WHERE study_id = :study_id AND status IN ('open', 'acknowledged')
GROUP BY status
