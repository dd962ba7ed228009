//! The gRPC face of presence-service: maps protobuf requests to use cases and errors to statuses.

mod mapping;
mod nodes;

use std::{collections::HashSet, num::NonZeroU32, pin::Pin, sync::Arc};

use futures::Stream;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use switchyard_api::{
    presence::v1::{self as pb, presence_service_server::PresenceService},
    runtime::v1::{GetServiceInfoRequest, ServiceInfo},
};
use switchyard_platform::{
    about::About,
    auth::{KEY_SYNC_SCOPE, Principal, Role, check_tenant},
    error::to_status,
    page_token,
    shutdown::Shutdown,
};
use tokio::sync::mpsc;
use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tonic::{Request, Response, Status, Streaming};

use crate::biz::{
    error::PresenceError,
    input::{self, MAX_CHANNEL, MAX_ID, MAX_PAGE, Violations},
    model::{API_NODE, UserKey},
    store::Cursor,
    tracker::{OnlineFilter, Tracker},
    view::{Audience, Detail},
    watch::{self, Feed, Subject},
};

/// The resource presence roles are checked on: tenant-wide bindings reach it.
const RESOURCE: &str = "presence";
/// `UpdatePresence` lasts this long unless the caller says otherwise.
const DEFAULT_TTL_SECONDS: i32 = 60;
const MAX_TTL_SECONDS: i32 = 3_600;

/// Implements `switchyard.presence.v1.PresenceService`.
#[derive(Clone)]
pub struct PresenceServiceApi {
    about: About,
    tracker: Arc<Tracker>,
    feed: Feed,
    shutdown: Shutdown,
    updates: Arc<DefaultKeyedRateLimiter<UserKey>>,
    nodes: nodes::NodeLimits,
}

impl std::fmt::Debug for PresenceServiceApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresenceServiceApi").finish_non_exhaustive()
    }
}

impl PresenceServiceApi {
    pub fn new(
        about: About,
        tracker: Arc<Tracker>,
        feed: Feed,
        shutdown: Shutdown,
        settings: &crate::conf::PresenceServiceSettings,
    ) -> Self {
        let rate = NonZeroU32::new(settings.updates_per_second_per_user.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = rate.saturating_mul(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN));
        Self {
            about,
            tracker,
            feed,
            shutdown,
            updates: Arc::new(RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))),
            nodes: nodes::NodeLimits {
                max_lease_ttl_ms: settings.max_lease_ttl_ms as i64,
                max_batch_events: settings.max_batch_events,
            },
        }
    }
}

fn status(error: PresenceError) -> Status {
    to_status(&error)
}

fn invalid(violations: Violations) -> Result<(), Status> {
    violations
        .into_result()
        .map_err(|violations| status(PresenceError::Invalid(violations)))
}

/// The metadata in which a Switchyard service (realtime-gateway feeding `$presence`
/// channels) names the tenant it reads for.
const ON_BEHALF_OF: &str = "x-switchyard-tenant";

/// The caller's tenant, once it holds `role` there; and whether it sees invisible users.
/// A Switchyard service (the shared credential) reads for the tenant it names, as others see it.
fn caller<T>(request: &Request<T>, role: Role) -> Result<(String, Audience, String), Status> {
    let principal = Principal::of(request).map_err(|error| status(error.into()))?;
    if role == Role::Viewer && principal.scopes.iter().any(|scope| scope == KEY_SYNC_SCOPE) {
        let tenant = request
            .metadata()
            .get(ON_BEHALF_OF)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| Status::invalid_argument(format!("a service names the tenant in `{ON_BEHALF_OF}`")))?;
        check_tenant(tenant).map_err(|error| status(error.into()))?;
        return Ok((tenant.to_owned(), Audience::Others, principal.subject.clone()));
    }
    principal
        .authorize(&principal.tenant, role, RESOURCE)
        .map_err(|error| status(error.into()))?;
    let admin = principal.authorize(&principal.tenant, Role::Admin, RESOURCE).is_ok();
    let audience = if admin { Audience::Insiders } else { Audience::Others };
    Ok((principal.tenant.clone(), audience, principal.subject.clone()))
}

/// The user themselves sees their invisible connections too.
fn audience_for(audience: Audience, subject: &str, user: &str) -> Audience {
    if subject == user { Audience::Insiders } else { audience }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::PresenceEvent, Status>> + Send>>;
type AckStream = Pin<Box<dyn Stream<Item = Result<pb::NodeAck, Status>> + Send>>;

#[tonic::async_trait]
impl PresenceService for PresenceServiceApi {
    async fn get_service_info(
        &self,
        _request: Request<GetServiceInfoRequest>,
    ) -> Result<Response<ServiceInfo>, Status> {
        let info = self.about.service_info().await.map_err(|error| to_status(&error))?;
        Ok(Response::new(info))
    }

    async fn update_presence(
        &self,
        request: Request<pb::UpdatePresenceRequest>,
    ) -> Result<Response<pb::Presence>, Status> {
        let (tenant, audience, subject) = caller(&request, Role::Editor)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        violations.text("user_id", &body.user_id, MAX_ID, true);
        let device = mapping::device(body.device.clone());
        input::check_device(&mut violations, "device.", &device);
        let (patch, end) = input::check_metas(&mut violations, "metas.", mapping::update_metas(&body), true);
        let ttl = match body.ttl_seconds {
            0 => DEFAULT_TTL_SECONDS,
            ttl if (1..=MAX_TTL_SECONDS).contains(&ttl) => ttl,
            _ => {
                violations.add("ttl_seconds", format!("1 to {MAX_TTL_SECONDS}"));
                DEFAULT_TTL_SECONDS
            }
        };
        invalid(violations)?;
        let key = UserKey::new(tenant.as_str(), body.user_id.as_str());
        if self.updates.check_key(&key).is_err() {
            return Err(status(PresenceError::RateLimited(format!(
                "presence of user `{}` is updated too often",
                body.user_id
            ))));
        }
        // One report per device, or per calling service when the device has no id.
        let reporter = if device.id.is_empty() {
            subject.as_str()
        } else {
            device.id.as_str()
        };
        let op = crate::biz::engine::Op::Report {
            connection: format!("{API_NODE}:{reporter}"),
            device,
            patch,
            ttl_ms: i64::from(ttl) * 1_000,
            end,
        };
        self.tracker.apply(vec![(key, op)]).await.map_err(status)?;
        let presence = self
            .tracker
            .get(&tenant, &body.user_id, audience_for(audience, &subject, &body.user_id))
            .await
            .map_err(status)?;
        Ok(Response::new(mapping::presence(presence)))
    }

    async fn get_presence(&self, request: Request<pb::GetPresenceRequest>) -> Result<Response<pb::Presence>, Status> {
        let (tenant, audience, subject) = caller(&request, Role::Viewer)?;
        let user = request.into_inner().user_id;
        let mut violations = Violations::default();
        violations.text("user_id", &user, MAX_ID, true);
        invalid(violations)?;
        let presence = self
            .tracker
            .get(&tenant, &user, audience_for(audience, &subject, &user))
            .await
            .map_err(status)?;
        Ok(Response::new(mapping::presence(presence)))
    }

    async fn batch_get_presence(
        &self,
        request: Request<pb::BatchGetPresenceRequest>,
    ) -> Result<Response<pb::BatchGetPresenceResponse>, Status> {
        let (tenant, audience, _) = caller(&request, Role::Viewer)?;
        let mut violations = Violations::default();
        let users = input::user_ids(
            &mut violations,
            "user_ids",
            &request.get_ref().user_ids,
            input::MAX_USERS,
        );
        let detail = view(&mut violations, request.get_ref().view);
        invalid(violations)?;
        let presences = self
            .tracker
            .get_many(&tenant, &users, audience, detail)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::BatchGetPresenceResponse {
            presences: presences
                .into_iter()
                .map(|(presence, _)| mapping::presence(presence))
                .collect(),
        }))
    }

    async fn list_online_users(
        &self,
        request: Request<pb::ListOnlineUsersRequest>,
    ) -> Result<Response<pb::ListOnlineUsersResponse>, Status> {
        let (tenant, audience, _) = caller(&request, Role::Viewer)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        violations.text("page_prefix", &body.page_prefix, MAX_PAGE, false);
        violations.text("viewing_product", &body.viewing_product, MAX_ID, false);
        violations.text("device_type", &body.device_type, 16, false);
        violations.text("country", &body.country, 2, false);
        let page_size = page_size(&mut violations, body.page_size);
        let after = page_token(&mut violations, &body.page_token);
        let detail = view(&mut violations, body.view);
        invalid(violations)?;
        let filter = OnlineFilter {
            page_prefix: body.page_prefix,
            viewing_product: body.viewing_product,
            in_checkout: body.in_checkout,
            device_type: body.device_type,
            country: body.country,
        };
        let page = self
            .tracker
            .online(&tenant, &filter, &after, page_size, audience, detail)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListOnlineUsersResponse {
            user_ids: page.users.iter().map(|presence| presence.user.clone()).collect(),
            users: page.users.into_iter().map(mapping::presence).collect(),
            count: clamp(page.count),
            next_page_token: page.next_after.as_deref().map(page_token::encode).unwrap_or_default(),
        }))
    }

    async fn get_channel_presence(
        &self,
        request: Request<pb::GetChannelPresenceRequest>,
    ) -> Result<Response<pb::GetChannelPresenceResponse>, Status> {
        let (tenant, _, _) = caller(&request, Role::Viewer)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        violations.text("channel", &body.channel, MAX_CHANNEL, true);
        let page_size = page_size(&mut violations, body.page_size);
        let after = page_token(&mut violations, &body.page_token);
        invalid(violations)?;
        let (members, next) = self
            .tracker
            .channel_members(&tenant, &body.channel, &after, page_size)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::GetChannelPresenceResponse {
            members: members.iter().map(mapping::member).collect(),
            next_page_token: next.as_deref().map(page_token::encode).unwrap_or_default(),
        }))
    }

    async fn get_channel_presence_stats(
        &self,
        request: Request<pb::GetChannelPresenceStatsRequest>,
    ) -> Result<Response<pb::ChannelPresenceStats>, Status> {
        let (tenant, _, _) = caller(&request, Role::Viewer)?;
        let channel = request.into_inner().channel;
        let mut violations = Violations::default();
        violations.text("channel", &channel, MAX_CHANNEL, true);
        invalid(violations)?;
        let (connections, users) = self.tracker.channel_stats(&tenant, &channel).await.map_err(status)?;
        Ok(Response::new(pb::ChannelPresenceStats {
            channel,
            connections: clamp(connections),
            users: clamp(users),
        }))
    }

    async fn get_page_viewers(
        &self,
        request: Request<pb::GetPageViewersRequest>,
    ) -> Result<Response<pb::PageViewers>, Status> {
        let (tenant, _, _) = caller(&request, Role::Viewer)?;
        let page = request.into_inner().page;
        let mut violations = Violations::default();
        violations.text("page", &page, MAX_PAGE, true);
        invalid(violations)?;
        let viewers = self.tracker.page_viewers(&tenant, &page).await.map_err(status)?;
        Ok(Response::new(pb::PageViewers {
            page,
            viewers: clamp(viewers),
        }))
    }

    type WatchPresenceStream = EventStream;

    async fn watch_presence(
        &self,
        request: Request<pb::WatchPresenceRequest>,
    ) -> Result<Response<Self::WatchPresenceStream>, Status> {
        let (tenant, audience, _) = caller(&request, Role::Viewer)?;
        let body = request.into_inner();
        let mut violations = Violations::default();
        let users = input::user_ids(&mut violations, "user_ids", &body.user_ids, input::MAX_USERS);
        if body.channels.len() > input::MAX_CHANNELS {
            violations.add("channels", format!("at most {} channels", input::MAX_CHANNELS));
        }
        for (index, channel) in body.channels.iter().enumerate() {
            violations.text(input::Indexed("channels", index), channel, MAX_CHANNEL, true);
        }
        if users.is_empty() && body.channels.is_empty() {
            violations.add("user_ids", "name at least one user or channel to watch");
        }
        let resume = match body.resume_cursor.as_str() {
            "" => None,
            text => {
                let cursor = Cursor::parse(text);
                if cursor.is_none() {
                    violations.add("resume_cursor", "not a cursor this service issued");
                }
                cursor
            }
        };
        invalid(violations)?;
        let subject = Subject {
            tenant,
            users: users.into_iter().collect::<HashSet<_>>(),
            channels: body.channels.into_iter().collect(),
            audience,
        };
        let (sender, receiver) = mpsc::channel(256);
        let stop = self.shutdown.token();
        tokio::spawn(watch::watch(
            self.tracker.clone(),
            self.feed.clone(),
            subject,
            resume,
            sender,
            stop,
        ));
        let stream = ReceiverStream::new(receiver).map(|item| match item {
            Ok(item) => Ok(mapping::watch_item(&item)),
            Err(error) => Err(status(error)),
        });
        Ok(Response::new(Box::pin(stream)))
    }

    type ReportConnectionsStream = AckStream;

    async fn report_connections(
        &self,
        request: Request<Streaming<pb::NodeReport>>,
    ) -> Result<Response<Self::ReportConnectionsStream>, Status> {
        nodes::require_service(&request)?;
        let stream = nodes::serve(
            self.tracker.clone(),
            self.nodes,
            request.into_inner(),
            self.shutdown.token(),
        );
        Ok(Response::new(Box::pin(stream)))
    }
}

/// A batch read's or a listing's `view`.
fn view(violations: &mut Violations, requested: i32) -> Detail {
    mapping::detail(requested).unwrap_or_else(|| {
        violations.add("view", "PRESENCE_VIEW_BASIC or PRESENCE_VIEW_FULL");
        Detail::Summary
    })
}

fn page_size(violations: &mut Violations, requested: i32) -> usize {
    match page_token::page_size(requested, input::DEFAULT_PAGE_SIZE as i64, input::MAX_PAGE_SIZE as i64) {
        Ok(size) => size as usize,
        Err(violation) => {
            violations.0.push(violation);
            input::DEFAULT_PAGE_SIZE
        }
    }
}

fn page_token(violations: &mut Violations, token: &str) -> String {
    match page_token::decode(token) {
        Ok(after) => after.unwrap_or_default(),
        Err(violation) => {
            violations.0.push(violation);
            String::new()
        }
    }
}

/// Counts travel as int32 (JSON numbers, not int64 strings); none comes near the bound.
fn clamp(count: i64) -> i32 {
    count.clamp(0, i64::from(i32::MAX)) as i32
}
