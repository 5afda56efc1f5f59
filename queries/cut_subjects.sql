-- DM records of one data cut: the versions valid in the given run of the given study.
SELECT id, usubjid, siteid, arm, actarm, age, sex, rfxstdtc, rfxendtc, dthdtc, dthfl, extra,
       valid_from_run, change
FROM subject_versions
WHERE study_id = :study_id
  AND valid_from_run <= :run_id
  AND (valid_to_run IS NULL OR valid_to_run > :run_id)
ORDER BY usubjid
