//! Operations on the hot keys (`--hot-keys N`): every worker reads, overwrites and
//! compare-and-sets the same few keys, so that the history shows operations racing on one
//! key. A compare-and-set expects what this worker last read of the key (its version is the
//! `If-Match`; a key last read absent is written `If-None-Match: *`). Values are unique per
//! write, so a value names the write that stored it.

use std::collections::HashMap;

use kvclient::{Condition, Versioned};
use rand::Rng;
use rand::rngs::StdRng;

use super::keylog::read_text;
use super::plan::Plan;
use kvclient::history::{History, Op, Outcome};

/// What a worker last read of each hot key: `None` when it read it absent.
pub type LastRead = HashMap<usize, Option<Versioned>>;

/// One operation on a random hot key, recorded in `history`. Answers whether it was a write
/// and the error of a failed request, if any: a compare-and-set refused by its precondition
/// (412, another worker wrote first) is an answer, recorded as `fail`, not an error.
pub async fn operate(
    plan: &Plan,
    history: &History,
    w: usize,
    value: String,
    rng: &mut StdRng,
    last: &mut LastRead,
) -> (bool, Option<kvclient::Error>) {
    let idx = rng.random_range(0..plan.hot.len());
    let key = &plan.hot[idx];
    let write = rng.random_bool(plan.write_ratio);
    let call = history.now();
    let (op, result, found) = if !write {
        let result = plan.client.get(key).await;
        let found = match &result {
            Ok(v) => {
                last.insert(idx, v.clone());
                read_text(v.clone())
            }
            Err(_) => None,
        };
        (Op::Get, result.map(|_| ()), found)
    } else if let Some(seen) = last.get(&idx).filter(|_| rng.random_bool(plan.cas_ratio)) {
        let condition = match seen {
            Some(Versioned {
                version: Some(v), ..
            }) => Condition::IfVersion(*v),
            _ => Condition::IfAbsent,
        };
        let expected = read_text(seen.clone());
        let result = plan.client.put_if(key, value.clone(), condition).await;
        (Op::Cas { expected, value }, result.map(|_| ()), None)
    } else {
        let result = plan.client.put(key, value.clone()).await;
        (Op::Put { value }, result.map(|_| ()), None)
    };
    let (outcome, error) = match result {
        Ok(()) => (Outcome::Ok, None),
        Err(kvclient::Error::PreconditionFailed { .. }) => (Outcome::Fail, None),
        Err(e) => (Outcome::of_error(&e), Some(e)),
    };
    history.record(w, key, op, call, outcome, found);
    (write, error)
}

/// After the timed phase: one read of every hot key, recorded, so that the history ends with
/// what the store kept (a lost write shows as a read that no linearization explains).
pub async fn read_back(plan: &Plan, history: &History) {
    for key in &plan.hot {
        let call = history.now();
        let result = plan.client.get(key).await;
        let outcome = Outcome::of(&result);
        let found = result.ok().and_then(read_text);
        history.record(plan.workers, key, Op::Get, call, outcome, found);
    }
}
