//! The headless Service: gives every shard pod the DNS name `NAME-i.NAME`, as `server-0.server`
//! in the book.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta::meta;
use crate::labels;
use crate::validate::Instance;

/// The headless Service named after the store.
pub fn service(inst: &Instance) -> Service {
    Service {
        metadata: meta(inst, inst.name.clone()),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".to_owned()),
            selector: Some(labels::selector(&inst.name)),
            // Every pod gets its DNS name before it is ready: a new server waits for its first
            // map (`--require-topology`) and the operator pushes it through this name. A server
            // that is not ready answers 503 and applies nothing, so clients only retry there.
            publish_not_ready_addresses: Some(true),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port: inst.spec.port,
                target_port: Some(IntOrString::String("http".to_owned())),
                protocol: Some("TCP".to_owned()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}
