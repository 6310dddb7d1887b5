-- Links blamed by three or more incidents within one hour.
SELECT root_cause_element AS link,
       count(*) AS incidents,
       min(opened_at) AS first_opened,
       max(opened_at) AS last_opened
FROM incidents
WHERE root_cause_element LIKE 'link %'
GROUP BY root_cause_element, date_trunc('hour', opened_at)
HAVING count(*) >= 3
ORDER BY incidents DESC
