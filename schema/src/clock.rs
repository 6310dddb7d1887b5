//! The wall clock as every part stamps events: nanoseconds since the Unix epoch.

/// The wall clock, ns since the Unix epoch (0 if the clock reads before it).
pub fn wall_clock_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
