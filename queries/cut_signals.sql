-- The signals stored for one data cut and analysis (pt or soc), in the order they were computed.
SELECT test, group_name AS "group", soc, pt, x1, py1, x0, py0, rate_ratio, rr_ci_low, rr_ci_high, p_one_sided,
       q_pt, q_soc, flagged, first_flagged_run
FROM derived_signals
WHERE run_id = :run_id AND analysis = :analysis
ORDER BY id
