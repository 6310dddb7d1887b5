-- Healing commands that were rejected, failed or rolled back, newest first.
SELECT c.issued_at, c.incident_id, c.target, c.action_kind, c.status, c.reason, i.root_cause_element
FROM commands c LEFT JOIN incidents i ON c.incident_id = i.incident_id
WHERE c.status IN ('rejected', 'failed', 'rolled_back')
ORDER BY c.issued_at DESC
