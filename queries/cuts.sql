-- Every succeeded run (data cut) of a study, newest first.
SELECT id AS run_id, study_id, cutoff, source, started_at, finished_at, message, counts
FROM ingestion_runs
WHERE status = 'succeeded' AND study_id = :study_id
ORDER BY id DESC
