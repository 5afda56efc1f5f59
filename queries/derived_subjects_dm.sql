-- Subject-level derivations of one data cut, beside the subject's DM record in that cut.
SELECT d.usubjid, d.cohort, d.trtsdt, d.trtedt, d.dthdt, d.saffl, d.window_end, d.days_at_risk, d.n_doses,
       s.siteid, s.arm, s.actarm, s.age, s.sex, s.rfxstdtc, s.rfxendtc, s.dthdtc, s.dthfl, s.extra
FROM derived_subjects d
JOIN subject_versions s ON s.id = d.subject_version_id
WHERE d.run_id = :run_id
ORDER BY d.usubjid
