//! A roll of a replicated store's pods to a new image, watched by polling its pods: which pods
//! were replaced in what order, and how many copies of each shard were out at once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::namespace::TestNamespace;
use crate::replicas::{self, CopyPod};
use crate::{Error, Result};

const POLL: Duration = Duration::from_millis(250);

/// What a finished roll looked like from outside.
#[derive(Debug, Clone)]
pub struct RollObserved {
    /// Per shard, its pods in the order their old incarnation went.
    pub order: BTreeMap<u32, Vec<String>>,
    /// Per shard, the most copies seen at once that were missing, terminating or not Ready.
    pub most_out: BTreeMap<u32, usize>,
    pub took: Duration,
}

/// The kvserver container's image of a pod.
pub fn image_of(pod: &Pod) -> Option<String> {
    pod.spec.as_ref().and_then(|s| {
        s.containers
            .iter()
            .find(|c| c.name == operator::labels::KVSERVER_CONTAINER)
            .and_then(|c| c.image.clone())
    })
}

/// Watches `store`'s `shards × factor` pods until every one is a new pod (not one of `before`'s
/// UIDs) running `image`, Ready, for at most `limit`.
pub async fn watch(
    ns: &TestNamespace,
    store: &str,
    before: &[CopyPod],
    (shards, factor): (u32, u32),
    image: &str,
    limit: Duration,
) -> Result<RollObserved> {
    let old: BTreeMap<String, (u32, String)> = before
        .iter()
        .map(|c| (c.pod.uid().unwrap_or_default(), (c.shard, c.name())))
        .collect();
    let mut gone: BTreeSet<String> = BTreeSet::new();
    let mut order: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    let mut most_out: BTreeMap<u32, usize> = (0..shards).map(|s| (s, 0)).collect();
    let started = Instant::now();
    loop {
        let now = replicas::copy_pods(ns, store).await?;
        let uids: BTreeSet<String> = now.iter().filter_map(|c| c.pod.uid()).collect();
        for (uid, (shard, name)) in &old {
            if !uids.contains(uid) && gone.insert(uid.clone()) {
                order.entry(*shard).or_default().push(name.clone());
            }
        }
        for (shard, most) in most_out.iter_mut() {
            let serving = now
                .iter()
                .filter(|c| c.shard == *shard && replicas::is_ready(&c.pod))
                .count();
            *most = (*most).max((factor as usize).saturating_sub(serving));
        }
        let done = now.len() == (shards * factor) as usize
            && now.iter().all(|c| {
                !c.pod.uid().is_some_and(|u| old.contains_key(&u))
                    && image_of(&c.pod).as_deref() == Some(image)
                    && replicas::is_ready(&c.pod)
            });
        if done {
            return Ok(RollObserved {
                order,
                most_out,
                took: started.elapsed(),
            });
        }
        if started.elapsed() >= limit {
            let seen: Vec<String> = now
                .iter()
                .map(|c| {
                    format!(
                        "{} {:?} ready={} old={}",
                        c.name(),
                        image_of(&c.pod),
                        replicas::is_ready(&c.pod),
                        c.pod.uid().is_some_and(|u| old.contains_key(&u))
                    )
                })
                .collect();
            return Err(Error::Timeout {
                what: format!("every pod of {store} replaced, running {image}, Ready"),
                secs: limit.as_secs(),
                last: format!("{seen:?}; replaced so far {order:?}"),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}
