-- Event-level derivations of one data cut, with the AE record's stable key and the raw values a listing shows.
SELECT d.ae_version_id, a.record_key, d.usubjid, d.soc, d.pt, d.astdt, d.astdtf, d.astdy, d.trtemfl,
       d.window_label, d.after_cutoff, d.counted, d.after_death, d.event_id, d.grade, d.grade_source, d.serious, d.related, d.uncoded, d.record_change,
       a.valid_from_run, a.aeseq, a.aeterm, a.aetoxgr, a.aesev, a.aestdtc, a.aeendtc, a.aeout, a.aerel
FROM derived_events d
JOIN ae_versions a ON a.id = d.ae_version_id
WHERE d.run_id = :run_id
ORDER BY d.usubjid, d.astdt, d.ae_version_id
