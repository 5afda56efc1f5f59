-- One chunk of a cut's event derivations, with the raw values a listing shows, in record order: the records
-- after the given record id, at most the given number (keyset paging: a million records are never held twice).
SELECT d.ae_version_id, d.usubjid, d.soc, d.pt, d.astdt, d.astdtf, d.astdy, d.trtemfl, d.window_label,
       d.after_cutoff, d.counted, d.after_death, d.event_id, d.grade, d.grade_source, d.serious, d.related, d.uncoded, d.record_change,
       a.aeseq, a.aeterm, a.aetoxgr, a.aesev, a.aestdtc, a.aeendtc, a.aeout, a.aerel
FROM derived_events d
JOIN ae_versions a ON a.id = d.ae_version_id
WHERE d.run_id = :run_id AND d.ae_version_id > :after
ORDER BY d.ae_version_id
LIMIT :limit
