//! Vigil's gRPC contracts, generated from `proto/` at build time. The `.proto` files are the
//! only definition of the wire format; besides the generated code this crate holds the gRPC
//! plumbing every service and client shares: the codec ([`codec`]), the cluster token sent
//! and checked ([`auth`]), how a channel is opened ([`channel`]), NodeAdmin requests
//! validated into domain values ([`admin`]), gRPC over TLS ([`tls`]), and the metrics and health
//! HTTP endpoint ([`ops`]).
#![deny(missing_docs)]

pub mod admin;
pub mod auth;
pub mod channel;
pub mod codec;
pub mod ops;
pub mod tls;

/// `proto/node_admin.proto`: the storage node's admin API.
#[allow(missing_docs, clippy::all)]
pub mod node {
    tonic::include_proto!("vigil.node.v1");
}

/// `proto/sentinel.proto`: the Raft transport between sentinels and the public sentinel API.
#[allow(missing_docs, clippy::all)]
pub mod sentinel {
    tonic::include_proto!("vigil.sentinel.v1");
}
