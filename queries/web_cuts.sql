-- The succeeded runs (data cuts) of one study, oldest first, with what the views need to label and cache them.
SELECT id AS run_id, study_id, cutoff, finished_at, derived_at
FROM ingestion_runs
WHERE status = 'succeeded' AND study_id = :study_id
ORDER BY id
