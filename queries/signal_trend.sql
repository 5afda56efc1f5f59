-- One signal (test, group, soc, pt) across the succeeded cuts of a study up to the given cut, oldest first.
SELECT r.id AS run_id, r.cutoff, s.x1, s.py1, s.x0, s.py0, s.rate_ratio, s.rr_ci_low, s.rr_ci_high,
       s.p_one_sided, s.q_pt, s.q_soc, s.flagged
FROM ingestion_runs r
JOIN derived_signals s ON s.run_id = r.id
WHERE r.study_id = :study_id AND r.status = 'succeeded' AND r.id <= :run_id
  AND s.analysis = :analysis AND s.test = :test AND s.group_name = :group_name AND s.soc = :soc AND s.pt = :pt
ORDER BY r.id
