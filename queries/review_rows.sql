-- Every review row of a study's records of one type (ae or subject), oldest first.
SELECT id, record_key, version_id, reviewed, username, reviewed_at
FROM reviews
WHERE study_id = :study_id AND record_type = :record_type
ORDER BY id
