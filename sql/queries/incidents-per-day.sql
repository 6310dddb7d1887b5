-- Incidents opened per day, with how they ended.
SELECT date_trunc('day', opened_at) AS day,
       count(*) AS incidents,
       sum(CASE WHEN outcome IN ('mitigated', 'recovered') THEN 1 ELSE 0 END) AS healed,
       sum(CASE WHEN outcome = 'no_action' THEN 1 ELSE 0 END) AS no_action,
       sum(CASE WHEN outcome = 'failed' THEN 1 ELSE 0 END) AS failed
FROM incidents
GROUP BY date_trunc('day', opened_at)
ORDER BY day
