-- Time to detect and to mitigate, by root-cause kind.
SELECT root_cause_kind,
       count(*) AS incidents,
       approx_percentile_cont(mttd_ms, 0.5) AS mttd_p50_ms,
       approx_percentile_cont(mttr_ms, 0.5) AS mttr_p50_ms,
       max(mttr_ms) AS mttr_max_ms
FROM incidents
GROUP BY root_cause_kind
ORDER BY incidents DESC
