//! Limits on what comes in: per-principal and per-IP rate limits, a global concurrency
//! limit with load shedding, and per-call timeouts. Everything here answers with a gRPC
//! status (and so, through the transcoder, with the matching HTTP status) instead of
//! queueing work the server cannot do.

use std::{
    convert::Infallible,
    net::IpAddr,
    num::NonZeroU32,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use futures::future::{BoxFuture, FutureExt};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};
use tonic::{Status, body::Body};
use tonic_types::{ErrorDetails, StatusExt};
use tower::{BoxError, Layer, Service};

use crate::{auth::Principal, settings::LimitSettings};

/// Keyed token buckets: authenticated calls are limited per principal, anonymous ones per IP.
/// Services a binary marks unmetered (data-plane reads answered from memory) skip both; the
/// global concurrency limit and load shedding still bound them.
#[derive(Clone)]
pub struct RateLimitLayer {
    per_principal: Arc<DefaultKeyedRateLimiter<String>>,
    per_ip: Arc<DefaultKeyedRateLimiter<IpAddr>>,
    unmetered: Arc<[String]>,
}

impl std::fmt::Debug for RateLimitLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimitLayer").finish_non_exhaustive()
    }
}

fn quota(per_second: u32) -> Quota {
    let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(per_second.max(1).saturating_mul(2)).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rate).allow_burst(burst)
}

impl RateLimitLayer {
    pub fn new(limits: &LimitSettings) -> Self {
        RateLimitLayer {
            per_principal: Arc::new(RateLimiter::keyed(quota(limits.per_principal_rps))),
            per_ip: Arc::new(RateLimiter::keyed(quota(limits.per_ip_rps))),
            unmetered: Arc::from([]),
        }
    }

    /// Exempts every method of these services (`package.Service`) from the rate limits.
    pub fn unmetered(mut self, services: &[String]) -> Self {
        self.unmetered = services.iter().map(|service| format!("/{service}/")).collect();
        self
    }

    /// Forgets idle keys so the maps do not grow without bound; call periodically.
    pub fn forget_idle(&self) {
        self.per_principal.retain_recent();
        self.per_ip.retain_recent();
    }

    fn check(&self, request: &http::Request<Body>) -> Result<(), Duration> {
        let path = request.uri().path();
        if self.unmetered.iter().any(|prefix| path.starts_with(prefix.as_str())) {
            return Ok(());
        }
        // The limiter's own clock: building a new one per call recalibrates quanta's TSC
        // clock (CPUID, which traps to the hypervisor in a VM) and cost ~12% of a GetConfig.
        let now = self.per_principal.clock().now();
        let outcome = match request.extensions().get::<Principal>() {
            Some(principal) => self
                .per_principal
                .check_key(&format!("{}/{}", principal.tenant, principal.subject)),
            None => {
                let ip = request
                    .extensions()
                    .get::<tonic::transport::server::TcpConnectInfo>()
                    .and_then(|info| info.remote_addr)
                    .map(|addr| addr.ip());
                match ip {
                    Some(ip) => self.per_ip.check_key(&ip),
                    None => return Ok(()),
                }
            }
        };
        outcome.map_err(|not_until| not_until.wait_time_from(now))
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimited<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RateLimited {
            inner,
            limits: self.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct RateLimited<S> {
    inner: S,
    limits: RateLimitLayer,
}

impl<S> Service<http::Request<Body>> for RateLimited<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if let Err(wait) = self.limits.check(&request) {
            let mut details = ErrorDetails::new();
            details.set_retry_info(Some(wait));
            let status = Status::with_error_details(tonic::Code::ResourceExhausted, "rate limit exceeded", details);
            return async move { Ok(status.into_http()) }.boxed();
        }
        self.inner.call(request).boxed()
    }
}

/// Turns the errors of tower's timeout, load-shed and concurrency layers into gRPC
/// statuses, so the stack below answers every call with a response and never an error.
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorsAsStatusLayer;

impl<S> Layer<S> for ErrorsAsStatusLayer {
    type Service = ErrorsAsStatus<S>;
    fn layer(&self, inner: S) -> Self::Service {
        ErrorsAsStatus { inner, not_ready: None }
    }
}

#[derive(Debug)]
pub struct ErrorsAsStatus<S> {
    inner: S,
    /// A readiness error, answered by the next call instead of failing the connection.
    not_ready: Option<BoxError>,
}

impl<S: Clone> Clone for ErrorsAsStatus<S> {
    fn clone(&self) -> Self {
        ErrorsAsStatus {
            inner: self.inner.clone(),
            not_ready: None,
        }
    }
}

impl<S> Service<http::Request<Body>> for ErrorsAsStatus<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        match self.inner.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(error)) => {
                self.not_ready = Some(error.into());
                Poll::Ready(Ok(()))
            }
        }
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if let Some(error) = self.not_ready.take() {
            return async move { Ok(status_of(error).into_http()) }.boxed();
        }
        let future = self.inner.call(request);
        async move { Ok(future.await.unwrap_or_else(|error| status_of(error.into()).into_http())) }.boxed()
    }
}

fn status_of(error: BoxError) -> Status {
    if error.is::<tower::load_shed::error::Overloaded>() {
        return Status::unavailable("server overloaded; retry with backoff");
    }
    if error.is::<tower::timeout::error::Elapsed>() {
        return Status::deadline_exceeded("the call took longer than the server allows");
    }
    tracing::error!(%error, "request failed inside the server stack");
    Status::internal("internal error")
}
