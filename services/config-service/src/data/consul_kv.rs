//! The Consul KV sink of `biz::mirror`.

use futures::future::BoxFuture;
use switchyard_platform::discovery::ConsulClient;

use crate::biz::mirror::KvSink;

#[derive(Debug, Clone)]
pub struct ConsulKv {
    client: ConsulClient,
}

impl ConsulKv {
    pub fn new(client: ConsulClient) -> Self {
        ConsulKv { client }
    }
}

impl KvSink for ConsulKv {
    fn put<'a>(&'a self, key: &'a str, value: &'a [u8]) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move { self.client.kv_put(key, value).await.map_err(|error| error.to_string()) })
    }
}
