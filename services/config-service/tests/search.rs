//! Listing and searching configs: name prefix, labels, content text, pagination.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{authed, shop};
use switchyard_api::config::v1 as pb;

#[tokio::test]
async fn configs_filter_by_prefix_label_and_text_and_paginate() {
    let service = support::sqlite().await;
    shop(&service).await;
    let mut client = service.client();
    for (id, team, text) in [
        ("payments-api", "money", r#"{"gateway": "bKash", "discount": "50%"}"#),
        ("payments-worker", "money", r#"{"queue": "settlements"}"#),
        ("search-api", "discovery", r#"{"engine": "opensearch"}"#),
        ("search-indexer", "discovery", r#"{"gateway": "none"}"#),
    ] {
        client
            .create_config(authed(
                &service.keys.editor,
                pb::CreateConfigRequest {
                    parent: "projects/shop".into(),
                    config_id: id.into(),
                    config: Some(pb::Config {
                        content: text.into(),
                        labels: [("team".to_owned(), team.to_owned())].into_iter().collect(),
                        ..Default::default()
                    }),
                },
            ))
            .await
            .unwrap();
    }
    let list = |request: pb::ListConfigsRequest| {
        let mut client = client.clone();
        let key = service.keys.viewer.clone();
        async move {
            let response = client.list_configs(authed(&key, request)).await.unwrap().into_inner();
            let names: Vec<String> = response
                .configs
                .iter()
                .map(|config| config.name.trim_start_matches("projects/shop/configs/").to_owned())
                .collect();
            (names, response.next_page_token)
        }
    };
    let base = pb::ListConfigsRequest {
        parent: "projects/shop".into(),
        ..Default::default()
    };
    let (names, _) = list(pb::ListConfigsRequest {
        name_prefix: "payments-".into(),
        ..base.clone()
    })
    .await;
    assert_eq!(names, vec!["payments-api", "payments-worker"]);
    let (names, _) = list(pb::ListConfigsRequest {
        labels: vec!["team=discovery".into()],
        ..base.clone()
    })
    .await;
    assert_eq!(names, vec!["search-api", "search-indexer"]);
    let (names, _) = list(pb::ListConfigsRequest {
        text: "GATEWAY".into(),
        ..base.clone()
    })
    .await;
    assert_eq!(
        names,
        vec!["payments-api", "search-indexer"],
        "case-insensitive content search"
    );
    let (names, _) = list(pb::ListConfigsRequest {
        text: "50%".into(),
        ..base.clone()
    })
    .await;
    assert_eq!(names, vec!["payments-api"], "LIKE wildcards are literal");
    let (names, _) = list(pb::ListConfigsRequest {
        text: "_".into(),
        ..base.clone()
    })
    .await;
    assert!(names.is_empty(), "{names:?}");
    let (names, _) = list(pb::ListConfigsRequest {
        text: "gateway".into(),
        labels: vec!["team=money".into()],
        ..base.clone()
    })
    .await;
    assert_eq!(names, vec!["payments-api"]);

    let (first, token) = list(pb::ListConfigsRequest {
        page_size: 3,
        ..base.clone()
    })
    .await;
    assert_eq!(first, vec!["payments-api", "payments-worker", "search-api"]);
    let (second, token) = list(pb::ListConfigsRequest {
        page_size: 3,
        page_token: token,
        ..base.clone()
    })
    .await;
    assert_eq!(second, vec!["search-indexer"]);
    assert!(token.is_empty());
    let (page, _) = list(pb::ListConfigsRequest {
        page_size: 1,
        labels: vec!["team=discovery".into()],
        ..base
    })
    .await;
    assert_eq!(page, vec!["search-api"], "label filters fill a page");
}
