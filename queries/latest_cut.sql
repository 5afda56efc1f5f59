-- The newest succeeded run (data cut) of a study, or of any study when no study is given.
SELECT id AS run_id, study_id, cutoff
FROM ingestion_runs
WHERE status = 'succeeded'
  AND (CAST(:study_id AS VARCHAR(64)) IS NULL OR study_id = :study_id)
ORDER BY id DESC
LIMIT 1
