//! The cluster token on outgoing calls: every Vigil gRPC client sends
//! `authorization: Bearer <token>`, which the servers' interceptors check.

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::{Request, Status};

/// An interceptor adding `authorization: Bearer <token>` to every request.
#[derive(Clone, Debug)]
pub struct Bearer(MetadataValue<Ascii>);

impl Bearer {
    /// The interceptor for `token`; `None` if the token cannot travel in a header
    /// (non-ASCII or control characters).
    pub fn new(token: &str) -> Option<Bearer> {
        format!("Bearer {token}").parse().ok().map(Bearer)
    }

    /// The header value, for calls made without an interceptor.
    pub fn value(&self) -> &MetadataValue<Ascii> {
        &self.0
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}
