-- The newest ingestion run of a study, whatever its status (running, failed or succeeded).
SELECT id AS run_id, status, message, cutoff, source, trigger, started_at, finished_at
FROM ingestion_runs
WHERE study_id = :study_id
ORDER BY id DESC
LIMIT 1
