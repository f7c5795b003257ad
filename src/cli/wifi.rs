//! `letterbox wifi`: the appliance's Wi-Fi settings, turned into wpa_supplicant's
//! configuration. The image runs it from the first-boot setup and, at every boot, on a
//! `wifi.txt` that the user wrote onto the card's boot partition from any computer:
//!
//! ```text
//! ssid = Our network
//! password = correct horse battery staple
//! country = GB
//! ```
//!
//! Only the derived WPA key (PBKDF2-HMAC-SHA1 of the passphrase and the SSID, 4096 rounds,
//! IEEE 802.11i annex H; what `wpa_passphrase` prints) is written, to a file of mode 0600 on
//! /data; the SSID is written in hex, so no character of it needs quoting. `import` then
//! overwrites `wifi.txt` with zeros and removes it, so the passphrase does not stay on the
//! FAT partition that any computer can read.
//!
//! Written here rather than with `wpa_passphrase` at boot: the same parser serves the
//! setup and the file, and it is tested without a radio.

use clap::Subcommand;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Where the image's wpa_supplicant reads its configuration.
const WIFI_CONF: &str = "/data/etc/wpa_supplicant.conf";

#[derive(Subcommand, Debug)]
pub enum WifiAction {
    /// One network; the passphrase is read from standard input (an empty line: an open
    /// network).
    Set {
        ssid: String,
        /// Two-letter country code (the channels and power allowed there).
        #[arg(long)]
        country: Option<String>,
        /// The network does not announce its name.
        #[arg(long)]
        hidden: bool,
        #[arg(long, default_value = WIFI_CONF)]
        conf: PathBuf,
    },
    /// Take the settings from FILE (wifi.txt: ssid =, password =, country =, hidden =),
    /// then wipe and remove FILE.
    Import {
        file: PathBuf,
        #[arg(long, default_value = WIFI_CONF)]
        conf: PathBuf,
    },
}

/// Runs `letterbox wifi ACTION`.
pub fn run(action: &WifiAction) -> Result<(), String> {
    match action {
        WifiAction::Set {
            ssid,
            country,
            hidden,
            conf,
        } => set(ssid, country.as_deref(), *hidden, conf),
        WifiAction::Import { file, conf } => import(file, conf),
    }
}

/// One network, as `wifi.txt` or the setup gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WifiSettings {
    pub ssid: String,
    /// None: an open network.
    pub passphrase: Option<String>,
    /// ISO 3166 alpha-2, which sets the channels and power the radio may use.
    pub country: Option<String>,
    /// The network does not announce itself: probe for it by name.
    pub hidden: bool,
}

impl WifiSettings {
    pub fn new(
        ssid: &str,
        passphrase: Option<&str>,
        country: Option<&str>,
        hidden: bool,
    ) -> Result<WifiSettings, String> {
        if ssid.is_empty() || ssid.len() > 32 {
            return Err(format!(
                "the network name must be 1 to 32 bytes, not {}",
                ssid.len()
            ));
        }
        let passphrase = passphrase.filter(|p| !p.is_empty());
        if let Some(p) = passphrase {
            let raw_key = p.len() == 64 && p.bytes().all(|b| b.is_ascii_hexdigit());
            if !raw_key && !(8..=63).contains(&p.len()) {
                return Err(format!(
                    "a WPA passphrase has 8 to 63 characters, not {}",
                    p.len()
                ));
            }
            if !p.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                return Err("a WPA passphrase has only printable ASCII characters".into());
            }
        }
        let country = match country.map(str::trim).filter(|c| !c.is_empty()) {
            Some(c) if c.len() == 2 && c.bytes().all(|b| b.is_ascii_alphabetic()) => {
                Some(c.to_ascii_uppercase())
            }
            Some(c) => return Err(format!("{c:?} is not a two-letter country code")),
            None => None,
        };
        Ok(WifiSettings {
            ssid: ssid.to_string(),
            passphrase: passphrase.map(str::to_string),
            country,
            hidden,
        })
    }

    /// Parses `wifi.txt`: `key = value` lines (`#` comments, blank lines; a value may be in
    /// double quotes, which keeps its outer spaces). Keys: ssid, password (or psk,
    /// passphrase), country, hidden (yes/no).
    pub fn parse(text: &str) -> Result<WifiSettings, String> {
        let (mut ssid, mut pass, mut country, mut hidden) = (None, None, None, false);
        let text = text.strip_prefix('\u{feff}').unwrap_or(text); // Windows editors
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or(format!("line {}: not key = value", number + 1))?;
            let value = value.trim();
            let value = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value)
                .to_string();
            match key.trim().to_ascii_lowercase().as_str() {
                "ssid" => ssid = Some(value),
                "password" | "psk" | "passphrase" => pass = Some(value),
                "country" => country = Some(value),
                "hidden" => {
                    hidden = match value.to_ascii_lowercase().as_str() {
                        "yes" | "true" | "1" => true,
                        "no" | "false" | "0" | "" => false,
                        other => return Err(format!("line {}: hidden = {other:?}", number + 1)),
                    }
                }
                other => return Err(format!("line {}: unknown key {other:?}", number + 1)),
            }
        }
        let ssid = ssid.ok_or("no ssid = line")?;
        WifiSettings::new(&ssid, pass.as_deref(), country.as_deref(), hidden)
    }

    /// The 256-bit WPA key: the passphrase through PBKDF2-HMAC-SHA1 (salt: the SSID), or
    /// the 64 hex digits given as the key itself.
    pub fn psk(&self) -> Option<String> {
        let p = self.passphrase.as_ref()?;
        if p.len() == 64 {
            return Some(p.to_ascii_lowercase());
        }
        let mut key = [0u8; 32];
        ring::pbkdf2::derive(
            ring::pbkdf2::PBKDF2_HMAC_SHA1,
            std::num::NonZeroU32::new(4096).expect("non-zero"),
            self.ssid.as_bytes(),
            p.as_bytes(),
            &mut key,
        );
        Some(hex(&key))
    }

    /// wpa_supplicant.conf for this network.
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# Written by `letterbox wifi`; the passphrase itself is not kept.\n\
             ctrl_interface=/run/wpa_supplicant\n",
        );
        if let Some(c) = &self.country {
            out.push_str(&format!("country={c}\n"));
        }
        out.push_str("network={\n");
        out.push_str(&format!("\tssid={}\n", hex(self.ssid.as_bytes())));
        if self.hidden {
            out.push_str("\tscan_ssid=1\n");
        }
        match self.psk() {
            Some(psk) => out.push_str(&format!("\tkey_mgmt=WPA-PSK\n\tpsk={psk}\n")),
            None => out.push_str("\tkey_mgmt=NONE\n"),
        }
        out.push_str("}\n");
        out
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `settings` to `conf` (mode 0600, through a temporary file and a rename).
pub fn write_conf(settings: &WifiSettings, conf: &Path) -> Result<(), String> {
    if let Some(dir) = conf.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let partial = conf.with_extension("partial");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)
        .map_err(|e| format!("{}: {e}", partial.display()))?;
    file.write_all(settings.render().as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("{}: {e}", partial.display()))?;
    std::fs::rename(&partial, conf).map_err(|e| format!("{}: {e}", conf.display()))
}

/// `letterbox wifi set SSID [--country CC] [--hidden]`, the passphrase on stdin (first
/// line; none: an open network).
pub fn set(ssid: &str, country: Option<&str>, hidden: bool, conf: &Path) -> Result<(), String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| format!("reading the passphrase: {e}"))?;
    let pass = line.trim_end_matches(['\r', '\n']);
    let settings = WifiSettings::new(ssid, Some(pass), country, hidden)?;
    write_conf(&settings, conf)?;
    println!(
        "Wi-Fi: network {:?} written to {}",
        settings.ssid,
        conf.display()
    );
    Ok(())
}

/// `letterbox wifi import FILE`: FILE (wifi.txt) into `conf`, then FILE is overwritten with
/// zeros and removed. A file that does not parse is left in place, and nothing changes.
pub fn import(file: &Path, conf: &Path) -> Result<(), String> {
    let bytes = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let text =
        String::from_utf8(bytes).map_err(|_| format!("{}: not UTF-8 text", file.display()))?;
    let settings = WifiSettings::parse(&text).map_err(|e| format!("{}: {e}", file.display()))?;
    write_conf(&settings, conf)?;
    let wiped = std::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .and_then(|mut f| {
            f.write_all(&vec![0u8; text.len()])?;
            f.sync_all()
        });
    if let Err(e) = wiped.and_then(|()| std::fs::remove_file(file)) {
        return Err(format!(
            "{}: written to {}, but not removed: {e}",
            file.display(),
            conf.display()
        ));
    }
    println!(
        "Wi-Fi: network {:?} from {} written to {}; {} removed",
        settings.ssid,
        file.display(),
        conf.display(),
        file.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_ieee_802_11i_annex_h() {
        // The test vectors of IEEE 802.11i-2004, H.4.1.
        let s = WifiSettings::new("IEEE", Some("password"), None, false).unwrap();
        assert_eq!(
            s.psk().unwrap(),
            "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"
        );
        let s = WifiSettings::new("ThisIsASSID", Some("ThisIsAPassword"), None, false).unwrap();
        assert_eq!(
            s.psk().unwrap(),
            "0dc0d6eb90555ed6419756b9a15ec3e3209b63df707dd508d14581f8982721af"
        );
    }

    #[test]
    fn wifi_txt_is_parsed_and_rendered() {
        let text = "\u{feff}# home\r\nSSID = \" Our net \"\r\npassword=ThisIsAPassword\r\n\
                    country = gb\r\nhidden = yes\r\n";
        let s = WifiSettings::parse(text).unwrap();
        assert_eq!(s.ssid, " Our net ");
        assert_eq!(s.country.as_deref(), Some("GB"));
        assert!(s.hidden);
        let conf = s.render();
        let expected = "country=GB\nnetwork={\n\tssid=204f7572206e657420\n\tscan_ssid=1\n\
                        \tkey_mgmt=WPA-PSK\n\tpsk=";
        assert!(conf.contains(expected), "{conf}");
        assert!(
            conf.ends_with(&format!("psk={}\n}}\n", s.psk().unwrap())),
            "{conf}"
        );
        assert!(!conf.contains("ThisIsAPassword"));
        let open = WifiSettings::parse("ssid=cafe\n").unwrap();
        assert!(open.render().contains("\tkey_mgmt=NONE\n"));
    }

    #[test]
    fn bad_settings_are_refused_with_the_reason() {
        assert_eq!(
            WifiSettings::parse("ssid=x\npassword=short\n").unwrap_err(),
            "a WPA passphrase has 8 to 63 characters, not 5"
        );
        assert_eq!(
            WifiSettings::parse("password=longenough\n").unwrap_err(),
            "no ssid = line"
        );
        assert_eq!(
            WifiSettings::parse("ssid=x\ncolour=blue\n").unwrap_err(),
            "line 2: unknown key \"colour\""
        );
        assert_eq!(
            WifiSettings::parse("ssid=x\ncountry=GBR\n").unwrap_err(),
            "\"GBR\" is not a two-letter country code"
        );
        assert_eq!(
            WifiSettings::new(&"n".repeat(33), None, None, false).unwrap_err(),
            "the network name must be 1 to 32 bytes, not 33"
        );
        assert_eq!(
            WifiSettings::parse("just words\n").unwrap_err(),
            "line 1: not key = value"
        );
    }
}
