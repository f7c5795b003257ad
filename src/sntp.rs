//! SNTP (RFC 4330): how far this machine's clock is from a time server. A Pi has no
//! real-time clock, and certificates, DKIM expiry and ACME all need the right time.
//! Written here: it is one 48-byte packet each way and four timestamps, less than a
//! dependency would cost in review and binary size.
//!
//! [`request`] and [`parse_reply`] are pure; [`query`] asks one server over UDP.

use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds from 1900-01-01 (NTP's era 0) to 1970-01-01.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// A time as NTP writes it: seconds since 1900 and a binary fraction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NtpTime(pub u64);

impl NtpTime {
    pub fn from_system(t: SystemTime) -> NtpTime {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let seconds = since.as_secs() + NTP_UNIX_OFFSET;
        let fraction = (u64::from(since.subsec_nanos()) << 32) / 1_000_000_000;
        NtpTime((seconds << 32) | fraction)
    }

    /// Seconds since the Unix epoch, with the fraction.
    pub fn unix_seconds(self) -> f64 {
        let seconds = (self.0 >> 32) as f64 - NTP_UNIX_OFFSET as f64;
        seconds + (self.0 & 0xffff_ffff) as f64 / 4_294_967_296.0
    }
}

/// A client request (version 4, mode 3) carrying our transmit time, which the server
/// echoes as the originate time.
pub fn request(transmit: NtpTime) -> [u8; 48] {
    let mut packet = [0u8; 48];
    packet[0] = (4 << 3) | 3;
    packet[40..48].copy_from_slice(&transmit.0.to_be_bytes());
    packet
}

/// What a valid server reply says.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reply {
    pub stratum: u8,
    /// When the server received the request, and when it sent the reply.
    pub received: NtpTime,
    pub transmitted: NtpTime,
}

/// Checks a reply as RFC 4330 §5 says: a server (mode 4) or broadcast (5) answer of
/// version 3 or 4, not unsynchronised (leap indicator 3), a stratum of 1 to 15 (0 is a
/// "kiss of death"), echoing our transmit time, with a transmit time of its own.
pub fn parse_reply(packet: &[u8], sent: NtpTime) -> Result<Reply, &'static str> {
    if packet.len() < 48 {
        return Err("short reply");
    }
    let (leap, version, mode) = (packet[0] >> 6, (packet[0] >> 3) & 7, packet[0] & 7);
    if mode != 4 && mode != 5 {
        return Err("not a server reply");
    }
    if !(3..=4).contains(&version) {
        return Err("unknown NTP version");
    }
    if leap == 3 {
        return Err("the server's clock is not synchronised");
    }
    let stratum = packet[1];
    if stratum == 0 {
        return Err("the server refused (kiss of death)");
    }
    if stratum > 15 {
        return Err("the server's stratum is invalid");
    }
    let stamp = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&packet[at..at + 8]);
        NtpTime(u64::from_be_bytes(b))
    };
    if stamp(24) != sent {
        return Err("the reply is not to our request");
    }
    let transmitted = stamp(40);
    if transmitted.0 == 0 {
        return Err("the reply has no transmit time");
    }
    Ok(Reply {
        stratum,
        received: stamp(32),
        transmitted,
    })
}

/// One measurement: how far the server's clock is ahead of ours, and the round trip.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub offset: f64,
    pub delay: f64,
    pub stratum: u8,
}

/// RFC 4330 §5: offset ((T2 - T1) + (T3 - T4)) / 2, delay (T4 - T1) - (T3 - T2).
pub fn sample(sent: NtpTime, reply: &Reply, arrived: NtpTime) -> Sample {
    let (t1, t2, t3, t4) = (
        sent.unix_seconds(),
        reply.received.unix_seconds(),
        reply.transmitted.unix_seconds(),
        arrived.unix_seconds(),
    );
    Sample {
        offset: ((t2 - t1) + (t3 - t4)) / 2.0,
        delay: (t4 - t1) - (t3 - t2),
        stratum: reply.stratum,
    }
}

/// `server` with NTP's port 123 unless it names one.
fn with_port(server: &str) -> String {
    if server.parse::<SocketAddr>().is_ok() {
        return server.to_string();
    }
    if let Ok(ip) = server.parse::<std::net::IpAddr>() {
        return SocketAddr::new(ip, 123).to_string();
    }
    match server.rsplit_once(':') {
        Some((_, port)) if port.parse::<u16>().is_ok() => server.to_string(),
        _ => format!("{server}:123"),
    }
}

/// Asks `server` (host or address, port 123 unless given) once, waiting at most
/// `timeout`; replies that do not answer our request are ignored until then.
pub fn query(server: &str, timeout: Duration) -> Result<Sample, String> {
    let with_port = with_port(server);
    let address = with_port
        .to_socket_addrs()
        .map_err(|e| format!("{server}: {e}"))?
        .next()
        .ok_or_else(|| format!("{server}: no address"))?;
    let local: SocketAddr = if address.is_ipv4() {
        "0.0.0.0:0".parse().expect("an address")
    } else {
        "[::]:0".parse().expect("an address")
    };
    let socket = UdpSocket::bind(local).map_err(|e| e.to_string())?;
    socket
        .connect(address)
        .map_err(|e| format!("{server}: {e}"))?;
    let deadline = std::time::Instant::now() + timeout;
    let sent = NtpTime::from_system(SystemTime::now());
    socket
        .send(&request(sent))
        .map_err(|e| format!("{server}: {e}"))?;
    let mut buffer = [0u8; 128];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(format!(
                "{server}: no answer within {} s",
                timeout.as_secs()
            ));
        }
        socket
            .set_read_timeout(Some(left))
            .map_err(|e| e.to_string())?;
        let n = match socket.recv(&mut buffer) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => return Err(format!("{server}: {e}")),
        };
        let arrived = NtpTime::from_system(SystemTime::now());
        match parse_reply(&buffer[..n], sent) {
            Ok(reply) => return Ok(sample(sent, &reply, arrived)),
            // Not ours (a stray or forged packet): keep waiting for the real answer.
            Err("the reply is not to our request") => continue,
            Err(why) => return Err(format!("{server}: {why}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(first: u8, stratum: u8, origin: NtpTime, t2: NtpTime, t3: NtpTime) -> Vec<u8> {
        let mut p = vec![0u8; 48];
        p[0] = first;
        p[1] = stratum;
        p[24..32].copy_from_slice(&origin.0.to_be_bytes());
        p[32..40].copy_from_slice(&t2.0.to_be_bytes());
        p[40..48].copy_from_slice(&t3.0.to_be_bytes());
        p
    }

    #[test]
    fn times_and_offsets() {
        let t = UNIX_EPOCH + Duration::from_millis(1_796_171_826_250);
        let n = NtpTime::from_system(t);
        assert_eq!(n.0 >> 32, 1_796_171_826 + NTP_UNIX_OFFSET);
        assert!((n.unix_seconds() - 1_796_171_826.25).abs() < 1e-6);
        let at = |s: f64| NtpTime::from_system(UNIX_EPOCH + Duration::from_secs_f64(s));
        // The server is 10 s ahead; 0.2 s each way, 0.1 s at the server.
        let r = parse_reply(&reply(0x24, 2, at(100.0), at(110.2), at(110.3)), at(100.0)).unwrap();
        let s = sample(at(100.0), &r, at(100.5));
        assert!((s.offset - 10.0).abs() < 1e-6, "{s:?}");
        assert!((s.delay - 0.4).abs() < 1e-6, "{s:?}");
        assert_eq!(request(at(100.0))[0], 0x23);
    }

    #[test]
    fn bad_replies() {
        let sent = NtpTime(5 << 32);
        let t = NtpTime(7 << 32);
        assert_eq!(parse_reply(&[0u8; 10], sent), Err("short reply"));
        assert_eq!(
            parse_reply(&reply(0x23, 2, sent, t, t), sent),
            Err("not a server reply")
        );
        assert_eq!(
            parse_reply(&reply(0x14, 2, sent, t, t), sent),
            Err("unknown NTP version")
        );
        assert_eq!(
            parse_reply(&reply(0xe4, 2, sent, t, t), sent),
            Err("the server's clock is not synchronised")
        );
        assert_eq!(
            parse_reply(&reply(0x24, 0, sent, t, t), sent),
            Err("the server refused (kiss of death)")
        );
        assert_eq!(
            parse_reply(&reply(0x24, 16, sent, t, t), sent),
            Err("the server's stratum is invalid")
        );
        assert_eq!(
            parse_reply(&reply(0x24, 2, t, t, t), sent),
            Err("the reply is not to our request")
        );
        assert_eq!(
            parse_reply(&reply(0x24, 2, sent, t, NtpTime(0)), sent),
            Err("the reply has no transmit time")
        );
        assert!(
            parse_reply(&reply(0x1c, 1, sent, t, t), sent).is_ok(),
            "version 3 is fine"
        );
        assert_eq!(with_port("127.0.0.1"), "127.0.0.1:123");
        assert_eq!(with_port("::1"), "[::1]:123");
        assert_eq!(with_port("[::1]:1123"), "[::1]:1123");
        assert_eq!(with_port("pool.ntp.org"), "pool.ntp.org:123");
        assert_eq!(with_port("time.example:4123"), "time.example:4123");
    }
}
