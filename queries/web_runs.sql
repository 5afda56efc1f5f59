-- Ingestion runs of a study, and runs that failed before their study was known, newest first.
SELECT r.id AS run_id, r.study_id, r.status, r.cutoff, r.source, r.trigger, r.worker, r.started_at,
       r.finished_at, r.message, r.counts, r.files,
       (SELECT COUNT(*) FROM quarantined_rows q WHERE q.run_id = r.id) AS n_quarantined
FROM ingestion_runs r
WHERE r.study_id = :study_id OR r.study_id IS NULL
ORDER BY r.id DESC
LIMIT :limit
