//! The layer in front of every gRPC method (and so every transcoded HTTP route): it resolves
//! the caller's credentials to a [`Principal`] in the request extensions, or refuses the
//! call with UNAUTHENTICATED unless the method is public.

use std::{
    collections::HashSet,
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::{BoxFuture, FutureExt};
use http::{Request, Response};
use tonic::{Status, body::Body};
use tower::{Layer, Service};

use super::{ACT_FOR_TENANT_HEADER, AuthError, Authenticator, Principal};

/// gRPC paths that need no credentials: health, reflection, and methods a service marks
/// public (such as `GetServiceInfo`).
#[derive(Debug, Clone, Default)]
pub struct PublicMethods {
    methods: HashSet<String>,
    services: Vec<String>,
}

impl PublicMethods {
    pub fn insert(&mut self, path: impl Into<String>) {
        self.methods.insert(path.into());
    }

    /// Makes every method of a service (`package.Service`) public.
    pub fn insert_service(&mut self, service: &str) {
        self.services.push(format!("/{service}/"));
    }

    fn contains(&self, path: &str) -> bool {
        path.starts_with("/grpc.health.v1.Health/")
            || path.starts_with("/grpc.reflection.")
            || self.methods.contains(path)
            || self.services.iter().any(|prefix| path.starts_with(prefix.as_str()))
    }
}

/// Authenticates every gRPC call that is not public and puts the [`Principal`] into the
/// request extensions.
/// What [`AuthLayer::admit`] decided for a transcoded HTTP call, carried into the gRPC request
/// it becomes so the credentials are checked once. Request extensions are filled only by
/// code in this process, never from the wire, so a caller cannot forge it.
#[derive(Debug, Clone)]
pub struct Admitted(pub Option<Principal>);

#[derive(Debug, Clone)]
pub struct AuthLayer {
    authenticator: Arc<Authenticator>,
    public: Arc<PublicMethods>,
}

impl AuthLayer {
    pub fn new(authenticator: Arc<Authenticator>, public: PublicMethods) -> Self {
        Self {
            authenticator,
            public: Arc::new(public),
        }
    }

    /// Whether gRPC `path` answers without credentials.
    pub fn is_public(&self, path: &str) -> bool {
        self.public.contains(path)
    }

    /// The caller of a request to gRPC `path` with these headers: `Ok(None)` when a public
    /// method is called without good credentials, an UNAUTHENTICATED status when another
    /// method is. The HTTP transcoder asks this before it reads a body, so an unauthenticated
    /// write is told 401, not what was wrong with its JSON. The services' shared credential
    /// with [`ACT_FOR_TENANT_HEADER`] acts for that tenant (see [`Principal::acting_for`]).
    pub fn admit(&self, path: &str, headers: &http::HeaderMap) -> Result<Option<Principal>, Status> {
        let resolved = match headers.get(http::header::AUTHORIZATION).map(|value| value.to_str()) {
            None => Err(AuthError::Missing),
            Some(Err(_)) => Err(AuthError::Malformed("authorization header is not ASCII".into())),
            Some(Ok(value)) => self.authenticator.authenticate(value),
        };
        let resolved = match (resolved, headers.get(ACT_FOR_TENANT_HEADER)) {
            (Ok(principal), Some(tenant)) => tenant
                .to_str()
                .map_err(|_| AuthError::Malformed(format!("{ACT_FOR_TENANT_HEADER} is not ASCII")))
                .and_then(|tenant| principal.acting_for(tenant)),
            (resolved, _) => resolved,
        };
        match resolved {
            Ok(principal) => Ok(Some(principal)),
            // Public methods still learn who calls when the credentials are good; bad ones are ignored.
            Err(_) if self.public.contains(path) => Ok(None),
            Err(error) => Err(Status::unauthenticated(error.to_string())),
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuthService<S> {
    inner: S,
    layer: AuthLayer,
}

impl<S> Service<Request<Body>> for AuthService<S>
where
    S: Service<Request<Body>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<Body>) -> Self::Future {
        let admitted = match request.extensions_mut().remove::<Admitted>() {
            Some(Admitted(principal)) => Ok(principal),
            None => self.layer.admit(request.uri().path(), request.headers()),
        };
        match admitted {
            Ok(Some(principal)) => {
                request.extensions_mut().insert(principal);
            }
            Ok(None) => {}
            Err(status) => return async move { Ok(status.into_http()) }.boxed(),
        }
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        inner.call(request).boxed()
    }
}
