-- Studies with at least one succeeded data cut, newest cut first.
SELECT study_id, MAX(id) AS latest_run_id
FROM ingestion_runs
WHERE status = 'succeeded' AND study_id IS NOT NULL
GROUP BY study_id
ORDER BY MAX(id) DESC
