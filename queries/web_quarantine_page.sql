-- One page of the rows a run put in quarantine, with the reason each was refused.
SELECT id, run_id, domain, file, row_number, "column", value, reason, raw
FROM quarantined_rows
WHERE run_id = :run_id
ORDER BY domain, row_number, id
LIMIT :limit OFFSET :offset
