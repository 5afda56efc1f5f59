-- The subject (DM) records of a data cut: stable key, the version in the cut, and the cut that made that version.
SELECT s.record_key, d.subject_version_id AS version_id, d.usubjid, s.valid_from_run
FROM derived_subjects d
JOIN subject_versions s ON s.id = d.subject_version_id
WHERE d.run_id = :run_id
ORDER BY d.usubjid
