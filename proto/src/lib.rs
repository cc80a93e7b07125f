//! Generated protobuf and gRPC code for Eddy's two wire protocols:
//! the callback protocol (`GatherService`, worker -> driver) and the node-to-node
//! protocol (`NodeService`). No logic lives here; conversions live with the domain types.
#![allow(missing_docs)]

/// Version 1 of the Eddy protocols.
pub mod v1 {
    tonic::include_proto!("eddy.v1");
}
