//! Wall-clock time as Unix seconds: what the store, the protocols and the queue record.

/// Seconds since 1970-01-01 UTC (0 if the clock is before that, as on a Pi without RTC
/// before its first time sync).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
