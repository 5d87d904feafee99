//! Vigil's gRPC contracts, generated from `proto/` at build time. The `.proto` files are the
//! only definition of the wire format; this crate adds nothing but the generated code.
#![allow(missing_docs, clippy::all)]

/// `proto/node_admin.proto`: the storage node's admin API.
pub mod node {
    tonic::include_proto!("vigil.node.v1");
}
