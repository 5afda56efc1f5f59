-- One ingestion run's study, status and cutoff (any status; a failed run may have no study yet).
SELECT id AS run_id, study_id, status, cutoff
FROM ingestion_runs
WHERE id = :run_id
