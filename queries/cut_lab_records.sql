-- LB records of one data cut, raw values as delivered (results and limits in standard units as numbers).
SELECT id, record_key, usubjid, lbseq, lbtestcd, lbtest, lbcat, lbstresc, lbstresn, lbstresu, lbstnrlo, lbstnrhi,
       lbnrind, lbblfl, lblobxfl, visitnum, visit, lbdtc, valid_from_run, change
FROM lb_versions
WHERE study_id = :study_id
  AND valid_from_run <= :run_id
  AND (valid_to_run IS NULL OR valid_to_run > :run_id)
ORDER BY usubjid, id
