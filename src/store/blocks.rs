//! The block list: sources (an IPv4 address or an IPv6 /64, as text) refused after too
//! many failed logins, or by hand with `letterbox block add`. It lives in the store so
//! that the command line and a running server see the same list at once. An expired
//! entry is kept for a day so that a source blocked again gets twice as long.

use super::schema::Block;
use super::{Result, Store};

/// How long an expired block is remembered, for doubling the next one.
pub const BLOCK_MEMORY_SECS: i64 = 86_400;

impl Store {
    /// Blocks `source` as `block` says; entries past their memory are dropped on the way,
    /// so rotating sources cannot grow the table for ever.
    pub fn block(&self, source: &str, block: &Block, now: i64) -> Result<()> {
        let mut txn = self.write_txn()?;
        let mut stale = Vec::new();
        for item in self.db.blocks.iter(&txn)? {
            let (key, entry) = item?;
            if entry.until + BLOCK_MEMORY_SECS < now {
                stale.push(key.to_string());
            }
        }
        for key in stale {
            self.db.blocks.delete(&mut txn, &key)?;
        }
        self.db.blocks.put(&mut txn, source, block)?;
        txn.commit()?;
        Ok(())
    }

    /// Removes a block (and its history); false when there was none.
    pub fn unblock(&self, source: &str) -> Result<bool> {
        let mut txn = self.write_txn()?;
        let removed = self.db.blocks.delete(&mut txn, source)?;
        txn.commit()?;
        Ok(removed)
    }

    /// The entry for `source`, in force or remembered.
    pub fn block_entry(&self, source: &str) -> Result<Option<Block>> {
        let txn = self.read_txn()?;
        Ok(self.db.blocks.get(&txn, source)?)
    }

    /// Every entry, in force or remembered; entries older than the memory are dropped.
    pub fn blocks(&self, now: i64) -> Result<Vec<(String, Block)>> {
        let mut txn = self.write_txn()?;
        let mut out = Vec::new();
        let mut stale = Vec::new();
        for item in self.db.blocks.iter(&txn)? {
            let (source, block) = item?;
            if block.until + BLOCK_MEMORY_SECS < now {
                stale.push(source.to_string());
            } else {
                out.push((source.to_string(), block));
            }
        }
        for source in stale {
            self.db.blocks.delete(&mut txn, &source)?;
        }
        txn.commit()?;
        Ok(out)
    }
}
