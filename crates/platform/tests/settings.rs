//! Settings precedence (defaults < file < `[services.<key>]` < environment) and error
//! messages that name the bad key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::result_large_err)]

use figment::Jail;
use switchyard_platform::{
    ServiceIdentity,
    settings::{LogFormat, load},
};

const FLAGS: ServiceIdentity = ServiceIdentity {
    name: "flag-service",
    key: "flag_service",
    grpc_port: 9016,
    http_port: 8016,
};

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Own {
    #[serde(default)]
    cache_size: u32,
}

#[test]
fn defaults_then_file_then_service_section_then_environment() {
    Jail::expect_with(|jail| {
        let defaults = load::<Own>(&FLAGS, None).unwrap();
        assert_eq!((defaults.grpc.port, defaults.http.port), (9016, 8016));
        assert_eq!(defaults.storage_url("flag-service"), "sqlite://data/flag-service.db");
        assert!(defaults.consul.is_none() && defaults.redis_url.is_none());

        jail.create_file(
            "switchyard.toml",
            r#"
                redis_url = "redis://file:6379"
                [telemetry]
                log_format = "pretty"
                [grpc]
                port = 7000
                [services.flag_service.grpc]
                port = 7016
                [services.flag_service.service]
                cache_size = 5
                [services.config_service.grpc]
                port = 7015
            "#,
        )?;
        let from_file = load::<Own>(&FLAGS, None).unwrap();
        assert_eq!(from_file.redis_url.as_deref(), Some("redis://file:6379"));
        assert_eq!(from_file.telemetry.log_format, LogFormat::Pretty);
        assert_eq!(from_file.grpc.port, 7016, "the service section beats the top level");
        assert_eq!(from_file.service.cache_size, 5);

        jail.set_env("SWITCHYARD_REDIS_URL", "redis://env:6379");
        jail.set_env("SWITCHYARD_SERVICES__FLAG_SERVICE__HTTP__PORT", "7116");
        jail.set_env("SWITCHYARD_LIMITS__PER_IP_RPS", "7");
        jail.set_env("SWITCHYARD_CONFIG", "switchyard.toml");
        let from_env = load::<Own>(&FLAGS, None).unwrap();
        assert_eq!(from_env.redis_url.as_deref(), Some("redis://env:6379"));
        assert_eq!(from_env.http.port, 7116);
        assert_eq!(from_env.limits.per_ip_rps, 7);
        assert_eq!(from_env.grpc.port, 7016, "untouched keys keep the file's value");
        Ok(())
    });
}

#[test]
fn errors_name_the_bad_key() {
    Jail::expect_with(|jail| {
        jail.set_env("SWITCHYARD_GRPC__PORT", "not-a-port");
        let error = load::<Own>(&FLAGS, None).unwrap_err().to_string();
        assert!(error.contains("grpc.port"), "{error}");
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.create_file("switchyard.toml", "[grpc]\nprot = 1\n")?;
        let error = load::<Own>(&FLAGS, None).unwrap_err().to_string();
        assert!(error.contains("prot"), "{error}");
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.set_env("SWITCHYARD_STORAGE__URL", "mysql://x");
        let error = load::<Own>(&FLAGS, None).unwrap_err().to_string();
        assert!(error.contains("storage.url"), "{error}");
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.create_file("switchyard.toml", "[consul]\naddress = \"http://c:8500\"\ntags = []\ncheck_interval = \"often\"\nderegister_critical_after = \"1m\"\nwatch_wait = \"5m\"\n")?;
        let error = load::<Own>(&FLAGS, None).unwrap_err().to_string();
        assert!(error.contains("consul.check_interval"), "{error}");
        Ok(())
    });
    let missing = load::<Own>(&FLAGS, Some(std::path::Path::new("/no/such/switchyard.toml"))).unwrap_err();
    assert!(missing.to_string().contains("does not exist"));
}
