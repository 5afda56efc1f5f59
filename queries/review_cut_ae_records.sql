-- The AE records of a data cut: stable key, the version in the cut, subject and the cut that made that version.
SELECT a.record_key, d.ae_version_id AS version_id, d.usubjid, a.valid_from_run
FROM derived_events d
JOIN ae_versions a ON a.id = d.ae_version_id
WHERE d.run_id = :run_id
ORDER BY d.usubjid, a.record_key
