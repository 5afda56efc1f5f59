-- EX records of one data cut.
SELECT id, usubjid, exseq, extrt, exdose, exdosu, exstdtc, exendtc, valid_from_run, change
FROM exposure_versions
WHERE study_id = :study_id
  AND valid_from_run <= :run_id
  AND (valid_to_run IS NULL OR valid_to_run > :run_id)
ORDER BY usubjid, exstdtc
