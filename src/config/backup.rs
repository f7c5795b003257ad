//! `[backup]`: the daily backup the server takes by itself (absent: none).

use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    /// Where the backups go (a USB disk on the appliance); the server's user must be able
    /// to write there.
    pub dir: PathBuf,
    /// How many backups to keep in `dir`; older ones are deleted after a new one is done.
    #[serde(default = "default_keep")]
    pub keep: usize,
    /// The hour (UTC, 0-23) the daily backup starts.
    #[serde(default = "default_hour")]
    pub hour: u32,
    /// gzip the archive.
    #[serde(default = "default_compress")]
    pub compress: bool,
    /// age recipients (`age1...`) to encrypt to; only their private keys open the backup,
    /// and those need never be on the box.
    #[serde(default)]
    pub recipients: Vec<String>,
}

fn default_keep() -> usize {
    7
}
fn default_hour() -> u32 {
    3
}
fn default_compress() -> bool {
    true
}

impl Backup {
    pub fn validate(&self) -> Result<(), String> {
        if self.keep == 0 {
            return Err("keep must be at least 1".into());
        }
        if self.hour > 23 {
            return Err("hour must be 0 to 23 (UTC)".into());
        }
        if !self.dir.is_absolute() {
            return Err("dir must be an absolute path".into());
        }
        for r in &self.recipients {
            r.parse::<age::x25519::Recipient>()
                .map_err(|e| format!("recipient {r:?}: {e}"))?;
        }
        Ok(())
    }
}
