//! `[clock]`: which time servers the clock is checked against, and how often.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Clock {
    /// SNTP servers (host or address, port 123 unless given). Empty: the ones the DHCP
    /// lease named (the appliance writes them to [`DHCP_SERVERS_FILE`]), else pool.ntp.org.
    pub servers: Vec<String>,
    /// How often `serve` checks the clock and logs its offset; 0 turns the check off.
    pub check_hours: u64,
}

/// Where the appliance's DHCP client writes the lease's NTP servers (option 42).
pub const DHCP_SERVERS_FILE: &str = "/run/letterbox/ntp-servers";
/// Asked when neither the config nor DHCP name a server.
pub const FALLBACK_SERVER: &str = "pool.ntp.org";

impl Default for Clock {
    fn default() -> Clock {
        Clock {
            servers: Vec::new(),
            check_hours: 6,
        }
    }
}

impl Clock {
    /// The servers to ask: configured, else DHCP's, else the public pool.
    pub fn effective_servers(&self) -> Vec<String> {
        if !self.servers.is_empty() {
            return self.servers.clone();
        }
        let dhcp: Vec<String> = std::fs::read_to_string(DHCP_SERVERS_FILE)
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        if !dhcp.is_empty() {
            return dhcp;
        }
        vec![FALLBACK_SERVER.to_string()]
    }
}
