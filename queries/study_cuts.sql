-- The succeeded data cuts of a study up to the given cut, oldest first.
SELECT id AS run_id, cutoff
FROM ingestion_runs
WHERE study_id = :study_id AND status = 'succeeded' AND id <= :run_id
ORDER BY id
