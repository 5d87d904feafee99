//! The token on gRPC calls: every Vigil client sends `authorization: Bearer <token>`
//! ([`Bearer`]) and every Vigil server checks it with [`TokenCheck`].

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

/// The server side: an interceptor that lets a request through only if it carries
/// `authorization: Bearer <token>` for the expected token (compared in constant time).
#[derive(Clone, Debug)]
pub struct TokenCheck {
    expected: std::sync::Arc<[u8]>,
    refusal: &'static str,
}

impl TokenCheck {
    /// Checks for `token`; `refusal` is the `unauthenticated` message a caller without it
    /// gets, and should say which token to send (e.g. "the node's [admin] token").
    pub fn new(token: &str, refusal: &'static str) -> TokenCheck {
        TokenCheck {
            expected: format!("Bearer {token}").into_bytes().into(),
            refusal,
        }
    }
}

impl Interceptor for TokenCheck {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let given = req
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if vigil_base::constant_time_eq(given, &self.expected) {
            Ok(req)
        } else {
            Err(Status::unauthenticated(self.refusal))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_expected_token_passes() {
        let mut check = TokenCheck::new("s3cret", "send the cluster token");
        let mut ok = Request::new(());
        ok.metadata_mut().insert(
            "authorization",
            Bearer::new("s3cret").unwrap().value().clone(),
        );
        assert!(check.call(ok).is_ok());
        let mut wrong = Request::new(());
        wrong.metadata_mut().insert(
            "authorization",
            Bearer::new("guess").unwrap().value().clone(),
        );
        let e = check.call(wrong).unwrap_err();
        assert_eq!(
            (e.code(), e.message()),
            (tonic::Code::Unauthenticated, "send the cluster token")
        );
        assert!(check.call(Request::new(())).is_err());
    }
}
