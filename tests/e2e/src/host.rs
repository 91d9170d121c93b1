//! The node as a host: finding a pod's or a container's processes in `/proc` and SIGKILLing
//! them, as a crash would. Only for the local single-node cluster, run as root (the fault
//! suite's preconditions; each function fails loudly otherwise).
//!
//! A container's processes are found by their cgroup: kubelet (cgroupfs driver) puts every
//! process of a pod under `.../pod<uid>/<container id>/` in each hierarchy, so the pod UID
//! finds all of the pod's processes (sandbox included) and the container ID finds one container's.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::{Error, Result};

/// Fails unless the test runs as root on the node (it kills and mounts on the host).
pub fn require_root() -> Result<()> {
    let uid = std::fs::metadata("/proc/self")?.uid();
    if uid == 0 {
        Ok(())
    } else {
        Err(Error::Check(format!(
            "the fault suite runs as root on the local cluster's node (uid {uid} here): it kills \
             container processes and mounts tmpfs volumes on the host"
        )))
    }
}

/// Every process whose cgroup path contains `needle` (any hierarchy).
fn pids_in_cgroup(needle: &str) -> Result<Vec<u32>> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc")? {
        let entry = entry?;
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // A process may exit between listing and reading: skip it.
        let Ok(cgroup) = std::fs::read_to_string(entry.path().join("cgroup")) else {
            continue;
        };
        if cgroup.lines().any(|line| line.contains(needle)) {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    Ok(pids)
}

/// The process name (`/proc/PID/comm`), or "" if it is gone.
pub fn comm(pid: u32) -> String {
    std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("comm"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Every process of a pod, its sandbox (pause) included.
pub fn pod_pids(pod: &Pod) -> Result<Vec<u32>> {
    let uid = pod
        .uid()
        .ok_or_else(|| Error::Check(format!("pod {} has no uid", pod.name_any())))?;
    // cgroupfs driver: `pod<uid>`; systemd driver: `pod<uid with _ for ->.slice`.
    let mut pids = pids_in_cgroup(&format!("pod{uid}"))?;
    pids.extend(pids_in_cgroup(&format!("pod{}", uid.replace('-', "_")))?);
    pids.sort_unstable();
    pids.dedup();
    check_found(pids, &format!("processes of pod {}", pod.name_any()))
}

/// The running container's ID (without the `containerd://` scheme).
pub fn container_id(pod: &Pod, container: &str) -> Result<String> {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == container))
        .and_then(|c| c.container_id.as_deref())
        .and_then(|id| id.rsplit("://").next())
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            Error::Check(format!(
                "pod {} has no running container {container}",
                pod.name_any()
            ))
        })
}

/// The processes of one container of a pod.
pub fn container_pids(pod: &Pod, container: &str) -> Result<Vec<u32>> {
    let id = container_id(pod, container)?;
    check_found(
        pids_in_cgroup(&id)?,
        &format!(
            "processes of container {container} in pod {}",
            pod.name_any()
        ),
    )
}

fn check_found(pids: Vec<u32>, what: &str) -> Result<Vec<u32>> {
    if pids.is_empty() {
        Err(Error::Check(format!(
            "found no {what} in /proc/*/cgroup: is this the cluster's node, and are we root?"
        )))
    } else {
        Ok(pids)
    }
}

/// SIGKILLs all `pids` with one kill(1), so they die as close to the same instant as we can.
pub fn sigkill(pids: &[u32]) -> Result<()> {
    if pids.is_empty() {
        return Err(Error::Check("nothing to kill".into()));
    }
    let status = Command::new("kill")
        .arg("-KILL")
        .args(pids.iter().map(u32::to_string))
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Check(format!(
            "kill -KILL {pids:?} failed: {status}"
        )))
    }
}

/// The repository root (the scripts of tests/cluster live there).
pub fn repo_root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs a script of the repository, failing with its output if it fails.
pub fn run_script(relative: &str, args: &[String]) -> Result<()> {
    let out = Command::new(repo_root().join(relative))
        .args(args)
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Check(format!(
            "{relative} {args:?} failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}
