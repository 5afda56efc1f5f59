-- How many rows a run put in quarantine.
SELECT COUNT(*) AS n FROM quarantined_rows WHERE run_id = :run_id
