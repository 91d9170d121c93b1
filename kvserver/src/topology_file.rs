//! The topology persisted on the data dir: written atomically (temp file, fsync, rename, fsync of
//! the directory) before a push is acknowledged, so a restarted server serves under the last map
//! it agreed to, never an older one.

use std::io::Write;
use std::path::{Path, PathBuf};

use kvproto::Topology;

use crate::storage::StorageError;

const FILE: &str = "topology.json";

pub fn path_in(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE)
}

/// The persisted topology, if any. A file that does not parse is an error, not "no topology":
/// serving every key locally by mistake would split the store.
pub fn load(path: &Path) -> anyhow::Result<Option<Topology>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(serde_json::from_slice(&bytes).map_err(|e| {
            anyhow::anyhow!(
                "cannot parse the persisted topology {}: {e}",
                path.display()
            )
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Replaces the persisted topology atomically and durably. Blocking.
pub fn save(path: &Path, topology: &Topology) -> Result<(), StorageError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("json.tmp");
    let bytes =
        serde_json::to_vec_pretty(topology).map_err(|e| StorageError::Engine(e.to_string()))?;
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        if e.kind() == std::io::ErrorKind::StorageFull {
            StorageError::Full
        } else {
            StorageError::Io(e)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kvproto::Sharding;

    #[test]
    fn saves_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = path_in(dir.path());
        assert!(load(&path).unwrap().is_none());
        let t = Topology::stable(3, Sharding::Modulo, vec!["http://a".into()]);
        save(&path, &t).unwrap();
        assert_eq!(load(&path).unwrap(), Some(t));
        std::fs::write(&path, b"{not json").unwrap();
        assert!(load(&path).is_err());
    }
}
