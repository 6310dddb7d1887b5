-- The features the stream job computes for every closed window, with DataFusion.
--
-- Edit freely: the job loads this file at start (features.sql_file in the config) and
-- checks that each query still returns the columns the detector reads (listed below;
-- extra columns are kept in the `features` history table). Tables:
--   link_samples: one row per (node, peer, interval); see the telemetry contract.
--   node_samples: one row per (node, interval).

-- name: link_features
-- One row per link end (node → peer). Loss on the node's transmissions is measured
-- from both ends: what the node sent against what the peer says it received.
-- Required: node, peer, samples, tx_packets, lost_packets, loss_ratio, probes_sent,
--           probe_loss, rtt_avg_us, down_fraction, peer_samples.
-- Optional: rx_packets (what the node received from the peer; without it the job
--           cannot weigh a silent node's other neighbours as witnesses).
WITH ends AS (
    SELECT node, peer,
           count(*)                                       AS samples,
           CAST(sum(tx_packets) AS DOUBLE)                AS tx_packets,
           CAST(sum(rx_packets) AS DOUBLE)                AS rx_packets,
           CAST(sum(drops) AS DOUBLE)                     AS drops,
           CAST(sum(errors) AS DOUBLE)                    AS errors,
           CAST(sum(tcp_retransmits) AS DOUBLE)           AS retransmits,
           CAST(sum(probes_sent) AS DOUBLE)               AS probes_sent,
           CAST(sum(probes_lost) AS DOUBLE)               AS probes_lost,
           avg(CASE WHEN probes_sent > probes_lost THEN rtt_avg_us END) AS rtt_avg_us,
           max(rtt_max_us)                                AS rtt_max_us,
           avg(CASE WHEN oper_up THEN 0.0 ELSE 1.0 END)   AS down_fraction
    FROM link_samples
    GROUP BY node, peer
)
SELECT a.node,
       a.peer,
       a.samples,
       a.tx_packets,
       a.rx_packets,
       a.drops,
       a.errors,
       a.retransmits,
       -- Compared only when both ends reported the same intervals: a window holding
       -- one end's counters but not the other's would read as loss.
       CASE WHEN b.node IS NULL OR a.samples <> b.samples THEN NULL
            ELSE greatest(a.tx_packets - b.rx_packets, 0.0) END            AS lost_packets,
       CASE WHEN b.node IS NULL OR a.samples <> b.samples OR a.tx_packets = 0 THEN NULL
            ELSE greatest(a.tx_packets - b.rx_packets, 0.0) / a.tx_packets END AS loss_ratio,
       a.probes_sent,
       CASE WHEN a.probes_sent = 0 THEN NULL
            ELSE a.probes_lost / a.probes_sent END                         AS probe_loss,
       a.rtt_avg_us,
       a.rtt_max_us,
       a.down_fraction,
       coalesce(b.samples, 0)                                              AS peer_samples
FROM ends a
LEFT JOIN ends b ON a.node = b.peer AND a.peer = b.node;

-- name: node_features
-- One row per node that reported in the window.
-- Required: node, samples, cpu, mem, softirq, queue_pressure.
SELECT node,
       count(*)            AS samples,
       avg(cpu)            AS cpu,
       max(cpu)            AS cpu_max,
       avg(mem)            AS mem,
       avg(softirq)        AS softirq,
       avg(queue_pressure) AS queue_pressure
FROM node_samples
GROUP BY node;
