-- One ingestion run with its study's derivation settings.
SELECT r.id AS run_id, r.study_id, r.status, r.cutoff, r.source, r.started_at, r.finished_at,
       s.window_days, s.cohort_column, s.related_values, s.ctcae_version, s.episode_key
FROM ingestion_runs r
JOIN studies s ON s.study_id = r.study_id
WHERE r.id = :run_id
