//! Just enough of etcd's v3 gRPC API (etcdserverpb KV.Range, KV.Put, Watch.Watch) for the
//! comparison benchmark: the messages are declared by hand with etcd's field numbers, so no
//! etcd client crate (and its own tonic) enters the build.

use prost::Message;
use tonic::{client::Grpc, codec::Streaming, transport::Channel};

#[derive(Clone, PartialEq, Message)]
pub struct RangeRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    /// Served by the member's local state, without a quorum round: etcd's fastest read.
    #[prost(bool, tag = "7")]
    pub serializable: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct KeyValue {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(int64, tag = "3")]
    pub mod_revision: i64,
    #[prost(bytes = "vec", tag = "5")]
    pub value: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RangeResponse {
    #[prost(message, repeated, tag = "2")]
    pub kvs: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct PutRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ResponseHeader {
    #[prost(int64, tag = "3")]
    pub revision: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct PutResponse {
    #[prost(message, optional, tag = "1")]
    pub header: Option<ResponseHeader>,
}

#[derive(Clone, PartialEq, Message)]
pub struct WatchCreateRequest {
    #[prost(bytes = "vec", tag = "1")]
    pub key: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct WatchRequest {
    #[prost(message, optional, tag = "1")]
    pub create_request: Option<WatchCreateRequest>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Event {
    #[prost(message, optional, tag = "2")]
    pub kv: Option<KeyValue>,
}

#[derive(Clone, PartialEq, Message)]
pub struct WatchResponse {
    #[prost(int64, tag = "2")]
    pub watch_id: i64,
    #[prost(bool, tag = "3")]
    pub created: bool,
    #[prost(message, repeated, tag = "11")]
    pub events: Vec<Event>,
}

fn path(text: &'static str) -> http::uri::PathAndQuery {
    http::uri::PathAndQuery::from_static(text)
}

pub async fn range(grpc: &mut Grpc<Channel>, key: &[u8]) -> Result<RangeResponse, tonic::Status> {
    grpc.ready()
        .await
        .map_err(|error| tonic::Status::unavailable(error.to_string()))?;
    let request = RangeRequest {
        key: key.to_vec(),
        serializable: true,
    };
    let codec = tonic_prost::ProstCodec::default();
    let response = grpc
        .unary(tonic::Request::new(request), path("/etcdserverpb.KV/Range"), codec)
        .await?;
    Ok(response.into_inner())
}

pub async fn put(grpc: &mut Grpc<Channel>, key: &[u8], value: &[u8]) -> Result<PutResponse, tonic::Status> {
    grpc.ready()
        .await
        .map_err(|error| tonic::Status::unavailable(error.to_string()))?;
    let request = PutRequest {
        key: key.to_vec(),
        value: value.to_vec(),
    };
    let codec = tonic_prost::ProstCodec::default();
    let response = grpc
        .unary(tonic::Request::new(request), path("/etcdserverpb.KV/Put"), codec)
        .await?;
    Ok(response.into_inner())
}

/// Opens a watch on `key` and waits until etcd confirms it was created.
pub async fn watch(grpc: &mut Grpc<Channel>, key: &[u8]) -> Result<Streaming<WatchResponse>, tonic::Status> {
    grpc.ready()
        .await
        .map_err(|error| tonic::Status::unavailable(error.to_string()))?;
    let create = WatchRequest {
        create_request: Some(WatchCreateRequest { key: key.to_vec() }),
    };
    // The request stream stays open (pending) for as long as the watch lives.
    let requests = futures::stream::iter([create]).chain(futures::stream::pending());
    let codec = tonic_prost::ProstCodec::<WatchRequest, WatchResponse>::default();
    let mut stream = grpc
        .streaming(tonic::Request::new(requests), path("/etcdserverpb.Watch/Watch"), codec)
        .await?
        .into_inner();
    loop {
        match stream.message().await? {
            Some(response) if response.created => return Ok(stream),
            Some(_) => continue,
            None => return Err(tonic::Status::unavailable("watch closed before it was created")),
        }
    }
}

use futures::StreamExt as _;
