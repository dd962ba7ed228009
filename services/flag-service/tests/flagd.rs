//! flagd's evaluation protocols (v1, v2) and sync protocol over real gRPC, on the flagd-testbed
//! flags: values, reasons, error statuses, selectors, events and snapshots.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::json;
use support::{boolean_flag, context, start, testkit, with_selector};
use switchyard_api::flagd::{
    evaluation::{v1, v2},
    sync::v1::{FetchAllFlagsRequest, GetMetadataRequest, SyncFlagsRequest},
};
use tokio_stream::StreamExt;
use tonic::Code;

#[tokio::test]
async fn v2_resolves_every_type_with_flagd_reasons() {
    let service = start(&[testkit()]).await;
    let mut client = service.v2();

    let boolean = client
        .resolve_boolean(v2::ResolveBooleanRequest {
            flag_key: "boolean-flag".into(),
            context: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (boolean.value, boolean.variant.as_deref(), boolean.reason.as_str()),
        (Some(true), Some("on"), "STATIC")
    );

    let integer = client
        .resolve_int(v2::ResolveIntRequest {
            flag_key: "integer-flag".into(),
            context: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(integer.value, Some(10));
    let float = client
        .resolve_float(v2::ResolveFloatRequest {
            flag_key: "float-flag".into(),
            context: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(float.value, Some(0.5));
    let object = client
        .resolve_object(v2::ResolveObjectRequest {
            flag_key: "object-flag".into(),
            context: None,
        })
        .await
        .unwrap()
        .into_inner();
    let object = switchyard_platform::proto_json::from_proto_struct(&object.value.unwrap());
    assert_eq!(
        serde_json::Value::Object(object),
        json!({"showImages": true, "title": "Check out these pics!", "imagesPerPage": 100})
    );

    let targeted = client
        .resolve_string(v2::ResolveStringRequest {
            flag_key: "some-email-targeted-flag".into(),
            context: context(json!({"email": "ballmer@macrosoft.com"})),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (targeted.value.as_deref(), targeted.reason.as_str()),
        (Some("hi"), "TARGETING_MATCH")
    );

    // No default variant and targeting that yields null: no value, reason DEFAULT — the
    // provider then returns the caller's default.
    let code_default = client
        .resolve_string(v2::ResolveStringRequest {
            flag_key: "no-default-flag-null-targeting-variant".into(),
            context: context(json!({"email": "wozniak@orange.com"})),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (code_default.value, code_default.variant, code_default.reason.as_str()),
        (None, None, "DEFAULT")
    );

    let disabled = client
        .resolve_boolean(v2::ResolveBooleanRequest {
            flag_key: "disabled-boolean-flag".into(),
            context: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (disabled.value, disabled.variant, disabled.reason.as_str()),
        (None, None, "DISABLED")
    );
}

#[tokio::test]
async fn errors_are_the_statuses_providers_map() {
    let service = start(&[testkit()]).await;
    let mut client = service.v2();
    let missing = client
        .resolve_boolean(v2::ResolveBooleanRequest {
            flag_key: "missing-flag".into(),
            context: None,
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let mismatch = client
        .resolve_int(v2::ResolveIntRequest {
            flag_key: "wrong-flag".into(),
            context: None,
        })
        .await
        .unwrap_err();
    assert_eq!(mismatch.code(), Code::InvalidArgument);
    let parse = client
        .resolve_string(v2::ResolveStringRequest {
            flag_key: "ref-to-nonexistent-evaluator-flag".into(),
            context: None,
        })
        .await
        .unwrap_err();
    assert_eq!(parse.code(), Code::DataLoss);
    assert!(parse.message().contains("nonexistent_evaluator"), "{}", parse.message());
    let bad_selector = client
        .resolve_boolean(with_selector(
            v2::ResolveBooleanRequest {
                flag_key: "boolean-flag".into(),
                context: None,
            },
            "owner=me",
        ))
        .await
        .unwrap_err();
    assert_eq!(bad_selector.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn v1_answers_zero_values_where_v2_leaves_them_unset_and_resolve_all_covers_the_set() {
    let service = start(&[testkit()]).await;
    let mut client = service.v1();
    let disabled = client
        .resolve_string(v1::ResolveStringRequest {
            flag_key: "disabled-string-flag".into(),
            context: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            disabled.value.as_str(),
            disabled.variant.as_str(),
            disabled.reason.as_str()
        ),
        ("", "", "DISABLED")
    );

    let all = client
        .resolve_all(v1::ResolveAllRequest {
            context: context(json!({"email": "ballmer@macrosoft.com", "targetingKey": "u1"})),
        })
        .await
        .unwrap()
        .into_inner();
    let string_flag = &all.flags["string-flag"];
    assert_eq!(
        (string_flag.reason.as_str(), string_flag.variant.as_str()),
        ("STATIC", "greeting")
    );
    assert_eq!(string_flag.value, Some(v1::any_flag::Value::StringValue("hi".into())));
    assert_eq!(
        all.flags["integer-flag"].value,
        Some(v1::any_flag::Value::DoubleValue(10.0))
    );
    assert_eq!(all.flags["disabled-boolean-flag"].reason, "DISABLED");
    assert_eq!(all.flags["some-email-targeted-flag"].reason, "TARGETING_MATCH");
    assert!(
        !all.flags.contains_key("null-default-flag"),
        "a flag with only a caller default is left out, as in flagd"
    );
    assert_eq!(all.flags["ref-to-nonexistent-evaluator-flag"].reason, "ERROR");
}

#[tokio::test]
async fn selectors_pick_a_source_or_a_flag_set() {
    let first =
        json!({"metadata": {"flagSetId": "shop"}, "flags": {"banner": boolean_flag("on"), "cart": boolean_flag("on")}});
    let second = json!({"flags": {"banner": boolean_flag("off")}});
    let service = start(&[first, second]).await;
    let mut client = service.v2();
    let resolve = |selector: Option<String>| {
        let mut client = client.clone();
        async move {
            let message = v2::ResolveBooleanRequest {
                flag_key: "banner".into(),
                context: None,
            };
            let request = match selector {
                Some(selector) => with_selector(message, &selector),
                None => tonic::Request::new(message),
            };
            client
                .resolve_boolean(request)
                .await
                .map(|response| response.into_inner())
        }
    };
    assert_eq!(
        resolve(None).await.unwrap().value,
        Some(false),
        "later files override earlier ones"
    );
    assert_eq!(
        resolve(Some(format!("source={}", service.source(0))))
            .await
            .unwrap()
            .value,
        Some(true)
    );
    assert_eq!(
        resolve(Some(service.source(0))).await.unwrap().value,
        Some(true),
        "a bare name is a source"
    );
    let by_set = resolve(Some("flagSetId=shop".into())).await.unwrap();
    assert_eq!(by_set.value, Some(true));
    let metadata = switchyard_platform::proto_json::from_proto_struct(&by_set.metadata.unwrap());
    assert_eq!(metadata.get("flagSetId"), Some(&json!("shop")));
    let elsewhere = client
        .resolve_boolean(with_selector(
            v2::ResolveBooleanRequest {
                flag_key: "cart".into(),
                context: None,
            },
            &service.source(1),
        ))
        .await
        .unwrap_err();
    assert_eq!(elsewhere.code(), Code::NotFound, "a selected source hides the others");
}

#[tokio::test]
async fn event_stream_reports_ready_then_the_changed_keys_of_an_edited_file() {
    let service = start(&[json!({"flags": {"banner": boolean_flag("off"), "cart": boolean_flag("on")}})]).await;
    let mut events = service
        .v2()
        .event_stream(v2::EventStreamRequest {})
        .await
        .unwrap()
        .into_inner();
    let ready = events.next().await.unwrap().unwrap();
    assert_eq!(ready.r#type, "provider_ready");

    service.replace_file(
        0,
        &json!({"flags": {"banner": boolean_flag("on"), "checkout": boolean_flag("on")}}),
    );
    let change = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("a change event")
        .unwrap()
        .unwrap();
    assert_eq!(change.r#type, "configuration_change");
    let data = serde_json::Value::Object(switchyard_platform::proto_json::from_proto_struct(
        &change.data.unwrap(),
    ));
    assert_eq!(
        data,
        json!({"flags": {"banner": {"type": "update"}, "cart": {"type": "delete"}, "checkout": {"type": "write"}}})
    );

    let value = service
        .v2()
        .resolve_boolean(v2::ResolveBooleanRequest {
            flag_key: "banner".into(),
            context: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(value.value, Some(true));
}

#[tokio::test]
async fn a_broken_edit_is_rejected_and_the_last_good_flags_keep_serving() {
    let service = start(&[json!({"flags": {"banner": boolean_flag("on")}})]).await;
    let mut events = service
        .v1()
        .event_stream(v1::EventStreamRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(events.next().await.unwrap().unwrap().r#type, "provider_ready");
    std::fs::write(&service.files[0], "{\"flags\": {\"banner\": ").unwrap();
    service.replace_file(
        0,
        &json!({"flags": {"banner": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "nope"}}}),
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let still = service
        .v1()
        .resolve_boolean(v1::ResolveBooleanRequest {
            flag_key: "banner".into(),
            context: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((still.value, still.variant.as_str()), (true, "on"));

    // A good edit afterwards is picked up.
    service.replace_file(0, &json!({"flags": {"banner": boolean_flag("off")}}));
    let change = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("a change event")
        .unwrap()
        .unwrap();
    assert_eq!(change.r#type, "configuration_change");
}

#[tokio::test]
async fn sync_sends_inlined_snapshots_now_and_after_each_change() {
    let document = json!({
        "metadata": {"flagSetId": "shop"},
        "flags": {"gold": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
                           "targeting": {"if": [{"$ref": "is_gold"}, "on"]}}},
        "$evaluators": {"is_gold": {"==": [{"var": "tier"}, "gold"]}}
    });
    let service = start(&[document]).await;
    let mut sync = service.sync();
    let mut snapshots = sync
        .sync_flags(SyncFlagsRequest {
            provider_id: "test".into(),
            selector: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = snapshots.next().await.unwrap().unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&first.flag_configuration).unwrap();
    assert_eq!(
        parsed["flags"]["gold"]["targeting"],
        json!({"if": [{"==": [{"var": "tier"}, "gold"]}, "on"]})
    );
    assert_eq!(parsed["flags"]["gold"]["metadata"], json!({"flagSetId": "shop"}));
    assert!(first.sync_context.is_some());

    service.replace_file(0, &json!({"flags": {"gold": boolean_flag("on")}}));
    let second = tokio::time::timeout(Duration::from_secs(5), snapshots.next())
        .await
        .expect("a snapshot")
        .unwrap()
        .unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&second.flag_configuration).unwrap();
    assert_eq!(parsed["flags"]["gold"]["defaultVariant"], json!("on"));

    let fetched = sync
        .fetch_all_flags(FetchAllFlagsRequest {
            provider_id: String::new(),
            selector: "flagSetId=shop".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&fetched.flag_configuration).unwrap(),
        json!({"flags": {}}),
        "the new file has no flag set id"
    );
    assert!(sync.get_metadata(GetMetadataRequest {}).await.is_ok());
}

#[tokio::test]
async fn streams_end_with_unavailable_on_shutdown() {
    let service = start(&[json!({"flags": {"banner": boolean_flag("on")}})]).await;
    let mut events = service
        .v2()
        .event_stream(v2::EventStreamRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(events.next().await.unwrap().unwrap().r#type, "provider_ready");
    service.shutdown.trigger();
    let end = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("the stream ends");
    assert_eq!(end.unwrap().unwrap_err().code(), Code::Unavailable);
}

#[tokio::test]
async fn a_static_context_overrides_callers_and_reaches_in_process_providers() {
    let document = json!({"flags": {"origin": {
        "state": "ENABLED", "variants": {"internal": "INTERNAL", "external": "EXTERNAL"}, "defaultVariant": "external",
        "targeting": {"if": [{"==": [{"var": "injectedmetadata"}, "set"]}, "internal", "external"]}
    }}});
    let service = support::start_with(&[document], |settings| {
        settings
            .service
            .static_context
            .insert("injectedmetadata".into(), json!("set"));
    })
    .await;
    let answer = service
        .v2()
        .resolve_string(v2::ResolveStringRequest {
            flag_key: "origin".into(),
            context: context(json!({"injectedmetadata": "forged"})),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        answer.value.as_deref(),
        Some("INTERNAL"),
        "the static context wins over the caller's"
    );

    let mut sync = service.sync();
    let first = sync
        .sync_flags(SyncFlagsRequest {
            provider_id: String::new(),
            selector: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .next()
        .await
        .unwrap()
        .unwrap();
    let sync_context = switchyard_platform::proto_json::from_proto_struct(&first.sync_context.unwrap());
    assert_eq!(
        serde_json::Value::Object(sync_context),
        json!({"injectedmetadata": "set"})
    );
    let metadata = sync
        .get_metadata(GetMetadataRequest {})
        .await
        .unwrap()
        .into_inner()
        .metadata
        .unwrap();
    assert_eq!(
        serde_json::Value::Object(switchyard_platform::proto_json::from_proto_struct(&metadata)),
        json!({"injectedmetadata": "set"})
    );
}
