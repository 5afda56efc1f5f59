-- AE records of one data cut, raw SDTM values as delivered.
SELECT id, record_key, usubjid, aeseq, aespid, aeterm, aedecod, aebodsys, aetoxgr, aesev, aeser, aesdth,
       aeslife, aeshosp, aesdisab, aescong, aesmie, aerel, aeacn, aeout, aestdtc, aeendtc, aegrpid,
       valid_from_run, change
FROM ae_versions
WHERE study_id = :study_id
  AND valid_from_run <= :run_id
  AND (valid_to_run IS NULL OR valid_to_run > :run_id)
ORDER BY usubjid, id
