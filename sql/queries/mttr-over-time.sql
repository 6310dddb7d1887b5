-- Time to detect and to mitigate of each incident (the latest 1000), in the order they opened.
SELECT opened_at, incident_id, root_cause_kind, root_cause_element, outcome, mttd_ms, mttr_ms
FROM (SELECT * FROM incidents ORDER BY opened_at DESC LIMIT 1000)
ORDER BY opened_at
