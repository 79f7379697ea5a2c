//! Saving the devnet's state so a demo survives a restart (challenges excepted: a
//! real node forgets them too).

use std::io::Write;
use std::path::Path;

use crate::rpc::State;

/// Write via a temporary file, fsync, rename: a crash leaves the old or the new
/// file, never half of one.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

pub fn load(path: &Path) -> Result<Option<State>, String> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let mut state: State = serde_json::from_slice(&bytes)
                .map_err(|e| format!("{} is not a devnet state file: {e}", path.display()))?;
            state.wallets.values_mut().for_each(crate::wallet::Wallet::reindex);
            Ok(Some(state))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}
