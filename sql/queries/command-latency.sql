-- Healing command round trip (issued -> verified, applied and acknowledged), by action.
SELECT action_kind,
       status,
       count(*) AS commands,
       round(approx_percentile_cont((CAST(acked_at AS BIGINT) - CAST(issued_at AS BIGINT)) / 1e6, 0.5), 1) AS p50_ms,
       round(approx_percentile_cont((CAST(acked_at AS BIGINT) - CAST(issued_at AS BIGINT)) / 1e6, 0.95), 1) AS p95_ms,
       round(max((CAST(acked_at AS BIGINT) - CAST(issued_at AS BIGINT)) / 1e6), 1) AS max_ms
FROM commands
WHERE acked_at IS NOT NULL
GROUP BY action_kind, status
ORDER BY commands DESC
