-- Succeeded runs (data cuts) whose alert rules have not been evaluated yet, oldest first; of one study or all.
SELECT r.id AS run_id, r.study_id
FROM ingestion_runs r
WHERE r.status = 'succeeded'
  AND (CAST(:study_id AS VARCHAR(64)) IS NULL OR r.study_id = :study_id)
  AND NOT EXISTS (SELECT 1 FROM alert_evaluations e WHERE e.run_id = r.id)
ORDER BY r.id
