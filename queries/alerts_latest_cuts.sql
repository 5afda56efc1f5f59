-- The newest succeeded run (data cut) of each study, or of the one study given.
SELECT r.study_id, MAX(r.id) AS run_id
FROM ingestion_runs r
WHERE r.status = 'succeeded'
  AND r.study_id IS NOT NULL
  AND (CAST(:study_id AS VARCHAR(64)) IS NULL OR r.study_id = :study_id)
GROUP BY r.study_id
ORDER BY r.study_id
