//! The Kubernetes manifests agree with the services: every service has a Deployment,
//! Service, ConfigMap and PodDisruptionBudget; ports are named `http` and `grpc` and equal
//! the service's defaults; probes hit the health endpoints on those ports; selectors match.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::BTreeMap, path::PathBuf};

use serde::Deserialize;
use serde_json::Value;
use switchyard_platform::ServiceIdentity;

const SERVICES: [ServiceIdentity; 5] = [
    config_service::conf::IDENTITY,
    flag_service::conf::IDENTITY,
    experiment_service::conf::IDENTITY,
    realtime_gateway::conf::IDENTITY,
    presence_service::conf::IDENTITY,
];

fn base_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes/base")
}

/// Every document of every manifest in the kustomization, by (kind, name).
fn documents() -> BTreeMap<(String, String), Value> {
    let kustomization: Value =
        serde_norway::from_str(&std::fs::read_to_string(base_dir().join("kustomization.yaml")).unwrap()).unwrap();
    let mut documents = BTreeMap::new();
    for file in kustomization["resources"].as_array().unwrap() {
        let text = std::fs::read_to_string(base_dir().join(file.as_str().unwrap())).unwrap();
        for document in serde_norway::Deserializer::from_str(&text) {
            let value = Value::deserialize(document).unwrap();
            let key = (
                value["kind"].as_str().unwrap().to_owned(),
                value["metadata"]["name"].as_str().unwrap().to_owned(),
            );
            documents.insert(key, value);
        }
    }
    documents
}

fn port_named(ports: &Value, name: &str, field: &str) -> u64 {
    ports
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no port named {name}"))[field]
        .as_u64()
        .unwrap()
}

#[test]
fn every_service_has_its_four_resources_with_matching_ports_and_probes() {
    let documents = documents();
    for service in SERVICES {
        let name = service.name.to_owned();
        let get = |kind: &str| {
            documents
                .get(&(kind.to_owned(), name.clone()))
                .unwrap_or_else(|| panic!("{kind} {name} is missing"))
        };
        let (deployment, svc, config, pdb) = (
            get("Deployment"),
            get("Service"),
            get("ConfigMap"),
            get("PodDisruptionBudget"),
        );

        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            port_named(&container["ports"], "http", "containerPort"),
            u64::from(service.http_port),
            "{name}"
        );
        assert_eq!(
            port_named(&container["ports"], "grpc", "containerPort"),
            u64::from(service.grpc_port),
            "{name}"
        );
        assert_eq!(
            config["data"]["SWITCHYARD_HTTP__PORT"],
            service.http_port.to_string(),
            "{name}"
        );
        assert_eq!(
            config["data"]["SWITCHYARD_GRPC__PORT"],
            service.grpc_port.to_string(),
            "{name}"
        );
        assert_eq!(container["envFrom"][0]["configMapRef"]["name"], name.as_str());
        assert_eq!(container["command"][0], format!("/usr/local/bin/{name}"));

        assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
        assert_eq!(container["readinessProbe"]["httpGet"]["port"], "http");
        assert_eq!(container["startupProbe"]["httpGet"]["path"], "/healthz");
        assert_eq!(
            container["livenessProbe"]["grpc"]["port"],
            u64::from(service.grpc_port),
            "{name}: gRPC health on the gRPC port"
        );
        assert!(
            container["resources"]["requests"]["cpu"].is_string()
                && container["resources"]["requests"]["memory"].is_string()
        );

        assert_eq!(
            port_named(&svc["spec"]["ports"], "http", "port"),
            u64::from(service.http_port)
        );
        assert_eq!(
            port_named(&svc["spec"]["ports"], "grpc", "port"),
            u64::from(service.grpc_port)
        );
        let labels = &deployment["spec"]["template"]["metadata"]["labels"];
        for selector in [
            &svc["spec"]["selector"],
            &pdb["spec"]["selector"]["matchLabels"],
            &deployment["spec"]["selector"]["matchLabels"],
        ] {
            for (key, value) in selector.as_object().unwrap() {
                assert_eq!(&labels[key], value, "{name}: selector {key} matches the pod labels");
            }
        }
        assert_eq!(pdb["spec"]["minAvailable"], 1);
    }
}

#[test]
fn production_overlay_builds_on_the_base() {
    let overlay = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/kubernetes/overlays/production/kustomization.yaml");
    let overlay: Value = serde_norway::from_str(&std::fs::read_to_string(overlay).unwrap()).unwrap();
    assert_eq!(overlay["resources"][0], "../../base");
    assert_eq!(
        overlay["images"][0]["name"], "switchyard",
        "the image name the base uses"
    );
}
