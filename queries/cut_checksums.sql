-- The file checksums of every succeeded run: the scheduler recognises an extract it has already ingested.
SELECT r.id AS run_id, r.study_id, r.checksums
FROM ingestion_runs r
WHERE r.status = 'succeeded'
ORDER BY r.id
