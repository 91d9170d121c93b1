//! Small, fillable volumes for the shards: one tmpfs per shard mounted on the node, offered as a
//! pre-bound hostPath PersistentVolume (StorageClass with `kubernetes.io/no-provisioner`) to the
//! StatefulSet's claim `data-STORE-i`. The test can then fill one shard's disk from the host.
//!
//! The mounts live under `$KVSTORE_STATE/faults/` (the local cluster's state dir, whose
//! teardown unmounts everything below it), and are unmounted by [`TmpfsVolumes::teardown`], or
//! lazily by `Drop` if the test panicked before that.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use k8s_openapi::api::core::v1::PersistentVolume;
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};

use crate::{Error, Result};

/// The StorageClass the suite's volumes belong to.
pub const STORAGE_CLASS: &str = "kvstore-faults-tmpfs";
/// uid/gid of the kvserver image (non-root); a hostPath volume gets no fsGroup chown.
const NONROOT: u32 = 65532;
const FILLER: &str = "filler";

/// The tmpfs volumes of one store, one per shard.
pub struct TmpfsVolumes {
    client: Client,
    root: PathBuf,
    mounts: Vec<PathBuf>,
    pvs: Vec<String>,
}

fn state_dir() -> PathBuf {
    std::env::var_os("KVSTORE_STATE")
        .map_or_else(|| PathBuf::from("/var/lib/kvstore-cluster"), PathBuf::from)
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Check(format!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

impl TmpfsVolumes {
    /// Mounts `shards` tmpfs of `size_mib` each and creates a PV per shard, pre-bound to the
    /// claim `data-STORE-i` of namespace `namespace`.
    pub async fn create(
        client: &Client,
        namespace: &str,
        store: &str,
        shards: u32,
        size_mib: u32,
    ) -> Result<Self> {
        let mut vols = TmpfsVolumes {
            client: client.clone(),
            root: state_dir().join("faults").join(namespace),
            mounts: Vec::new(),
            pvs: Vec::new(),
        };
        match vols.setup(namespace, store, shards, size_mib).await {
            Ok(()) => Ok(vols),
            Err(e) => {
                // Undo what was made; the setup error is the one worth reporting.
                let _ = vols.teardown().await;
                Err(e)
            }
        }
    }

    async fn setup(
        &mut self,
        namespace: &str,
        store: &str,
        shards: u32,
        size_mib: u32,
    ) -> Result<()> {
        let client = self.client.clone();
        let class: StorageClass = serde_json::from_value(serde_json::json!({
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": { "name": STORAGE_CLASS, "labels": { "kvstore.dev/e2e": "true" } },
            "provisioner": "kubernetes.io/no-provisioner",
            "reclaimPolicy": "Retain",
            "volumeBindingMode": "Immediate",
        }))?;
        match Api::<StorageClass>::all(client.clone())
            .create(&PostParams::default(), &class)
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {} // left by an earlier run: same spec
            Err(e) => return Err(e.into()),
        }
        for i in 0..shards {
            let dir = self.root.join(format!("shard-{i}"));
            std::fs::create_dir_all(&dir)?;
            run(Command::new("mount")
                .args(["-t", "tmpfs", "-o"])
                .arg(format!(
                    "size={size_mib}m,uid={NONROOT},gid={NONROOT},mode=0750"
                ))
                .arg("tmpfs")
                .arg(&dir))?;
            self.mounts.push(dir.clone());
            let name = format!("{namespace}-{i}");
            let pv: PersistentVolume = serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": { "name": name, "labels": { "kvstore.dev/e2e": "true" } },
                "spec": {
                    "capacity": { "storage": format!("{size_mib}Mi") },
                    "accessModes": ["ReadWriteOnce"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": STORAGE_CLASS,
                    "claimRef": { "namespace": namespace, "name": format!("data-{store}-{i}") },
                    "hostPath": { "path": dir.to_string_lossy(), "type": "Directory" },
                }
            }))?;
            Api::<PersistentVolume>::all(client.clone())
                .create(&PostParams::default(), &pv)
                .await?;
            self.pvs.push(name);
        }
        Ok(())
    }

    fn dir(&self, shard: u32) -> Result<&PathBuf> {
        self.mounts
            .get(shard as usize)
            .ok_or_else(|| Error::Check(format!("no volume for shard {shard}")))
    }

    /// Fills shard `shard`'s disk from the host with a filler file until ENOSPC; returns the
    /// bytes written.
    pub fn fill(&self, shard: u32) -> Result<u64> {
        let path = self.dir(shard)?.join(FILLER);
        let mut file = std::fs::File::create(&path)?;
        let mut written = 0u64;
        // Big chunks first, then small ones to take the last partial pages.
        for chunk in [1usize << 20, 4096, 1] {
            let buf = vec![0u8; chunk];
            loop {
                match file.write(&buf) {
                    Ok(0) => break,
                    Ok(n) => written += n as u64,
                    Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(written)
    }

    /// Deletes the filler file again.
    pub fn free(&self, shard: u32) -> Result<()> {
        std::fs::remove_file(self.dir(shard)?.join(FILLER))?;
        Ok(())
    }

    /// Deletes the PVs (call once the store's pods are gone), the StorageClass, and unmounts.
    pub async fn teardown(mut self) -> Result<()> {
        self.release().await
    }

    async fn release(&mut self) -> Result<()> {
        let pvs: Api<PersistentVolume> = Api::all(self.client.clone());
        let mut first_error = None;
        for name in std::mem::take(&mut self.pvs) {
            if let Err(e) = pvs.delete(&name, &DeleteParams::default()).await {
                first_error.get_or_insert(Error::from(e));
            }
        }
        if let Err(e) = Api::<StorageClass>::all(self.client.clone())
            .delete(STORAGE_CLASS, &DeleteParams::default())
            .await
        {
            first_error.get_or_insert(Error::from(e));
        }
        if let Err(e) = self.unmount() {
            first_error.get_or_insert(e);
        }
        first_error.map_or(Ok(()), Err)
    }

    fn unmount(&mut self) -> Result<()> {
        let mut first_error = None;
        for dir in std::mem::take(&mut self.mounts) {
            // Lazy: a container that still runs keeps its own view until it is gone.
            if let Err(e) = run(Command::new("umount").arg("-l").arg(&dir)) {
                first_error.get_or_insert(e);
                continue;
            }
            let _ = std::fs::remove_dir(&dir);
        }
        let _ = std::fs::remove_dir(&self.root);
        first_error.map_or(Ok(()), Err)
    }
}

impl Drop for TmpfsVolumes {
    /// Only if `teardown` did not run (a panic): never leave mounts on the host.
    fn drop(&mut self) {
        if !self.mounts.is_empty()
            && let Err(e) = self.unmount()
        {
            eprintln!("could not unmount the fault suite's tmpfs volumes: {e}");
        }
    }
}
