-- Every row a run put in quarantine, in the order of the quarantine grid (narrowed to a cohort in Python: the
-- subject is inside the row as read).
SELECT id, run_id, domain, file, row_number, "column", value, reason, raw
FROM quarantined_rows
WHERE run_id = :run_id
ORDER BY domain, row_number, id
