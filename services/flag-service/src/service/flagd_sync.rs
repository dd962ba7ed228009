//! `flagd.sync.v1`: flag definitions for in-process providers, which evaluate locally.
//!
//! SyncFlags sends the selection's full flagd document at once and again after every change
//! (flagd sends snapshots, never diffs); FetchAllFlags sends it once. `$evaluators` are inlined
//! and set metadata folded into each flag, as flagd does. The selector comes from the
//! `flagd-selector` header or, as flagd's own sync clients send it, the request body.

use std::sync::Arc;

use futures::StreamExt;
use switchyard_api::flagd::sync::v1::{
    FetchAllFlagsRequest, FetchAllFlagsResponse, GetMetadataRequest, GetMetadataResponse, SyncFlagsRequest,
    SyncFlagsResponse, flag_sync_service_server::FlagSyncService,
};
use switchyard_platform::{Shutdown, error::to_status, proto_json::to_proto_struct, shutdown::end_on_shutdown};
use tonic::{Request, Response, Status};

use super::flagd::{self, EventStream};
use crate::biz::{evaluation::Evaluator, feeds::snapshots};

/// Implements `flagd.sync.v1.FlagSyncService`.
#[derive(Debug, Clone)]
pub struct FlagdSync {
    evaluator: Evaluator,
    shutdown: Shutdown,
}

impl FlagdSync {
    pub fn new(evaluator: Evaluator, shutdown: Shutdown) -> Self {
        Self { evaluator, shutdown }
    }
}

#[tonic::async_trait]
impl FlagSyncService for FlagdSync {
    type SyncFlagsStream = EventStream<SyncFlagsResponse>;

    async fn sync_flags(&self, request: Request<SyncFlagsRequest>) -> Result<Response<Self::SyncFlagsStream>, Status> {
        let (reader, selector) = flagd::reader(&self.evaluator, &request, &request.get_ref().selector)?;
        let selection = self
            .evaluator
            .selection(&reader, &selector)
            .map_err(|error| to_status(&error))?;
        let sync_context = to_proto_struct(self.evaluator.static_context());
        let documents = snapshots(Arc::clone(self.evaluator.catalog()), reader, selection).map(move |document| {
            Ok(SyncFlagsResponse {
                flag_configuration: document.to_string(),
                sync_context: Some(sync_context.clone()),
            })
        });
        Ok(Response::new(Box::pin(end_on_shutdown(
            documents,
            self.shutdown.clone(),
        ))))
    }

    async fn fetch_all_flags(
        &self,
        request: Request<FetchAllFlagsRequest>,
    ) -> Result<Response<FetchAllFlagsResponse>, Status> {
        let (reader, selector) = flagd::reader(&self.evaluator, &request, &request.get_ref().selector)?;
        let document = flagd::view(&self.evaluator, &reader, &selector)?.document();
        Ok(Response::new(FetchAllFlagsResponse {
            flag_configuration: document.to_string(),
        }))
    }

    /// The static context in-process providers add to every evaluation (older providers ask
    /// here; newer ones read `sync_context`).
    async fn get_metadata(
        &self,
        _request: Request<GetMetadataRequest>,
    ) -> Result<Response<GetMetadataResponse>, Status> {
        Ok(Response::new(GetMetadataResponse {
            metadata: Some(to_proto_struct(self.evaluator.static_context())),
        }))
    }
}
