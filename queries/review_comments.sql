-- The comments (and data queries) of a study, newest first; a record type of NULL means both types.
SELECT id AS comment_id, record_type, record_key, usubjid, version_id, username, created_at, text, query_status
FROM comments
WHERE study_id = :study_id
  AND (CAST(:record_type AS VARCHAR(8)) IS NULL OR record_type = :record_type)
ORDER BY id DESC
