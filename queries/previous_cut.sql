-- The succeeded data cut of the same study just before the given run (its "previous cut"), if any.
SELECT p.id AS run_id, p.cutoff
FROM ingestion_runs r
JOIN ingestion_runs p ON p.study_id = r.study_id AND p.id < r.id AND p.status = 'succeeded'
WHERE r.id = :run_id
ORDER BY p.id DESC
LIMIT 1
