-- The cohorts (values of the study's grouping column) of a data cut's safety population, with their size.
SELECT cohort, COUNT(*) AS n_subjects
FROM derived_subjects
WHERE run_id = :run_id AND saffl = :saffl AND cohort IS NOT NULL
GROUP BY cohort
ORDER BY cohort
