//! A pod cut off the network, as a partition does: two iptables rules inside its network
//! namespace drop every packet in and out but loopback's, until they are removed again.
//!
//! The namespace is held open by a file descriptor of this process (`/proc/<pid>/ns/net` of one
//! of the container's processes), and entered through it (`nsenter --net=/proc/<us>/fd/<n>`),
//! so the rules can be removed even if that process exits or restarts meanwhile. Only the rules
//! added here are removed, each by its exact spec (`-D`); no chain is flushed. Only for the
//! local cluster's node, run as root ([`crate::host`]).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::{Error, Result, host};

pub const IPTABLES: &str = "/usr/sbin/iptables";
pub const NSENTER: &str = "/usr/bin/nsenter";
/// Seconds iptables waits for the xtables lock (kube-proxy may hold it).
const LOCK_WAIT: &str = "5";

/// One of the two drop rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Input,
    Output,
}

impl Rule {
    const ALL: [Rule; 2] = [Rule::Input, Rule::Output];

    fn chain(self) -> &'static str {
        match self {
            Rule::Input => "INPUT",
            Rule::Output => "OUTPUT",
        }
    }

    /// The rule's match and target, the same for adding, checking and deleting it.
    fn spec(self) -> [&'static str; 5] {
        let interface = match self {
            Rule::Input => "-i",
            Rule::Output => "-o",
        };
        ["!", interface, "lo", "-j", "DROP"]
    }

    /// `iptables` arguments for `op` (`-I` inserts first in the chain, `-D`, `-C`).
    fn args(self, op: &'static str) -> Vec<&'static str> {
        let mut args = vec!["-w", LOCK_WAIT, op, self.chain()];
        if op == "-I" {
            args.push("1");
        }
        args.extend(self.spec());
        args
    }
}

/// A pod's network cut off; [`NetCut::heal`] restores it, and dropping it without a heal
/// removes the rules as a best effort (reporting on stderr what it could not remove).
#[derive(Debug)]
pub struct NetCut {
    pod: String,
    /// Keeps the namespace alive and enterable while the rules are in it.
    netns: File,
    inserted: Vec<Rule>,
}

/// Fails with what to install when a tool is missing.
fn require_tools() -> Result<()> {
    for (tool, package) in [(IPTABLES, "iptables"), (NSENTER, "util-linux")] {
        if !Path::new(tool).exists() {
            return Err(Error::Check(format!(
                "cutting a pod's network needs {tool} on the cluster's node (package {package}: \
                 `apt-get install {package}`), and it is missing"
            )));
        }
    }
    Ok(())
}

impl NetCut {
    /// Drops every packet in and out of `pod`'s network namespace (loopback excepted), entered
    /// through a process of its container `container`.
    pub async fn cut(pod: &Pod, container: &str) -> Result<NetCut> {
        require_tools()?;
        let name = pod.name_any();
        let pids = host::container_pids(pod, container)?;
        let pid = pids
            .first()
            .ok_or_else(|| Error::Check(format!("no process of {container} in {name}")))?;
        let netns = File::open(format!("/proc/{pid}/ns/net"))?;
        let ns_meta = netns.metadata()?;
        // This test runs in the node's network namespace; init's is compared too where it may
        // be read (a sandboxed machine refuses /proc/1/ns even to root).
        let ours = std::fs::metadata("/proc/self/ns/net")?;
        let node = std::fs::metadata("/proc/1/ns/net").ok();
        let shared = std::iter::once(ours)
            .chain(node)
            .any(|m| m.dev() == ns_meta.dev() && m.ino() == ns_meta.ino());
        if shared {
            return Err(Error::Check(format!(
                "pod {name} shares the node's (or this test's) network namespace: cutting it \
                 would cut the node"
            )));
        }
        let mut cut = NetCut {
            pod: name,
            netns,
            inserted: Vec::new(),
        };
        for rule in Rule::ALL {
            cut.run(rule, "-I").await?;
            cut.inserted.push(rule);
        }
        Ok(cut)
    }

    /// Removes the rules (each by its exact spec), then checks that neither is left.
    pub async fn heal(mut self) -> Result<()> {
        let mut errors = Vec::new();
        for rule in std::mem::take(&mut self.inserted) {
            if let Err(e) = self.run(rule, "-D").await {
                errors.push(e.to_string());
                self.inserted.push(rule);
            }
        }
        if errors.is_empty() {
            for rule in Rule::ALL {
                // `-C` fails (exit 1) when the rule is absent, which is what we want.
                if self.run(rule, "-C").await.is_ok() {
                    errors.push(format!("{} still has {:?}", rule.chain(), rule.spec()));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Check(format!(
                "restoring the network of pod {}: {}",
                self.pod,
                errors.join("; ")
            )))
        }
    }

    /// `nsenter --net=<our fd> iptables <op> <rule>`, off the async threads.
    async fn run(&self, rule: Rule, op: &'static str) -> Result<()> {
        let netns = self.netns_path();
        let pod = self.pod.clone();
        tokio::task::spawn_blocking(move || iptables(&netns, &pod, rule, op))
            .await
            .map_err(|e| Error::Check(format!("iptables thread: {e}")))?
    }

    /// The namespace as a path any process of ours can open (nsenter is a child: our fds are
    /// close-on-exec, but `/proc/<pid>/fd/<n>` of this process reaches it).
    fn netns_path(&self) -> String {
        format!("/proc/{}/fd/{}", std::process::id(), self.netns.as_raw_fd())
    }
}

fn iptables(netns: &str, pod: &str, rule: Rule, op: &'static str) -> Result<()> {
    let out = Command::new(NSENTER)
        .arg(format!("--net={netns}"))
        .arg(IPTABLES)
        .args(rule.args(op))
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::Check(format!(
            "in the network namespace of pod {pod}: iptables {} failed ({}): {}",
            rule.args(op).join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

impl Drop for NetCut {
    fn drop(&mut self) {
        let netns = self.netns_path();
        for rule in std::mem::take(&mut self.inserted) {
            if let Err(e) = iptables(&netns, &self.pod, rule, "-D") {
                eprintln!("netcut: could not restore the network (best effort on drop): {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_is_deleted_and_checked_by_the_spec_it_was_inserted_with() {
        for rule in Rule::ALL {
            let insert = rule.args("-I");
            let delete = rule.args("-D");
            let check = rule.args("-C");
            assert_eq!(insert[..4], ["-w", LOCK_WAIT, "-I", rule.chain()]);
            assert_eq!(insert[4], "1");
            assert_eq!(insert[5..], delete[4..]);
            assert_eq!(delete[..4], ["-w", LOCK_WAIT, "-D", rule.chain()]);
            assert_eq!(check[4..], delete[4..]);
        }
        assert_eq!(Rule::Input.args("-D")[4..], ["!", "-i", "lo", "-j", "DROP"]);
        assert_eq!(
            Rule::Output.args("-D")[4..],
            ["!", "-o", "lo", "-j", "DROP"]
        );
    }
}
