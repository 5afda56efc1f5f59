-- One subject's DM record in a data cut, with its derived dates.
SELECT s.usubjid, s.siteid, s.arm, s.actarm, s.age, s.sex, s.rfxstdtc, s.rfxendtc, s.dthdtc, s.dthfl, s.extra,
       d.cohort, d.trtsdt, d.trtedt, d.dthdt, d.saffl, d.window_end, d.days_at_risk, d.n_doses
FROM subject_versions s
JOIN derived_subjects d ON d.run_id = :run_id AND d.usubjid = s.usubjid
WHERE s.study_id = :study_id
  AND s.usubjid = :usubjid
  AND s.valid_from_run <= :run_id
  AND (s.valid_to_run IS NULL OR s.valid_to_run > :run_id)
