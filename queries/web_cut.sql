-- One run with its study's settings and what the overview shows about it.
SELECT r.id AS run_id, r.study_id, r.status, r.message, r.cutoff, r.source, r.counts, r.started_at,
       r.finished_at, r.derived_at, s.window_days, s.cohort_column, s.ctcae_version
FROM ingestion_runs r
JOIN studies s ON s.study_id = r.study_id
WHERE r.id = :run_id
