-- Subject-level derivations of one data cut.
SELECT usubjid, cohort, trtsdt, trtedt, dthdt, saffl, window_end, days_at_risk, n_doses
FROM derived_subjects
WHERE run_id = :run_id
ORDER BY usubjid
