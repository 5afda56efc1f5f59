-- One subject's EX records in a data cut, in time order.
SELECT usubjid, exseq, extrt, exdose, exdosu, exstdtc, exendtc
FROM exposure_versions
WHERE study_id = :study_id
  AND usubjid = :usubjid
  AND valid_from_run <= :run_id
  AND (valid_to_run IS NULL OR valid_to_run > :run_id)
ORDER BY exstdtc, id
