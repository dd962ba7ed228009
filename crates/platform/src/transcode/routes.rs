//! The HTTP routes of a set of gRPC services, read from the `google.api.http` options in
//! the descriptor set — including `additional_bindings` — and matched per request.

use prost::Message;
use prost_reflect::{DescriptorPool, MethodDescriptor, Value};
use switchyard_api::google::api::{HttpRule, http_rule::Pattern};

use super::template::{Binding, PathTemplate, TemplateError};

/// Where the request body goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyTarget {
    /// No body: every field comes from the path and the query.
    None,
    /// `body: "*"`: the body is the message, minus path-bound fields.
    Whole,
    /// `body: "field"`: the body is that one field.
    Field(String),
}

/// One HTTP binding of one RPC.
#[derive(Debug, Clone)]
pub struct Route {
    pub http_method: http::Method,
    pub template: PathTemplate,
    pub body: BodyTarget,
    /// `response_body`: empty for the whole response message.
    pub response_body: String,
    pub method: MethodDescriptor,
    /// Answer with the proto field names (`user_id`) instead of lowerCamelCase: the
    /// ecosystem's own routes (under [`ECOSYSTEM_PREFIX`]) are served as Kratos serves them.
    pub proto_field_names: bool,
}

/// Paths the ecosystem's Kratos services already expose; their bindings answer in
/// snake_case, like Kratos's JSON codec (`UseProtoNames`), so existing callers keep working.
pub const ECOSYSTEM_PREFIX: &str = "/api/";

impl Route {
    /// The gRPC path the route calls, e.g. `/switchyard.config.v1.ConfigService/GetServiceInfo`.
    pub fn grpc_path(&self) -> String {
        format!("/{}/{}", self.method.parent_service().full_name(), self.method.name())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("service `{0}` is not in the descriptor set")]
    UnknownService(String),
    #[error("{method}: {source}")]
    Template { method: String, source: TemplateError },
    #[error("{method}: {reason}")]
    Rule { method: String, reason: String },
}

/// Every route of the named services, most specific first.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

/// The outcome of looking up a request.
#[derive(Debug)]
pub enum Lookup<'a> {
    Found(&'a Route, Vec<Binding>),
    /// The path exists under other verbs.
    WrongMethod(Vec<http::Method>),
    NotFound,
}

impl RouteTable {
    pub fn build(pool: &DescriptorPool, services: &[&str]) -> Result<Self, RouteError> {
        let extension = pool.get_extension_by_name("google.api.http");
        let mut routes = Vec::new();
        for name in services {
            let service = pool
                .get_service_by_name(name)
                .ok_or_else(|| RouteError::UnknownService((*name).to_owned()))?;
            let Some(extension) = &extension else { continue };
            for method in service.methods() {
                let options = method.options();
                if !options.has_extension(extension) {
                    continue;
                }
                let rule = match options.get_extension(extension).as_ref() {
                    Value::Message(message) => HttpRule::decode(message.encode_to_vec().as_slice())
                        .map_err(|error| rule_error(&method, error.to_string()))?,
                    _ => continue,
                };
                add_rule(&mut routes, &method, &rule, true)?;
            }
        }
        routes.sort_by_key(|route| std::cmp::Reverse(route.template.specificity()));
        Ok(RouteTable { routes })
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    pub fn lookup(&self, method: &http::Method, path: &str) -> Lookup<'_> {
        let mut allowed = Vec::new();
        for route in &self.routes {
            let Some(bindings) = route.template.matches(path) else {
                continue;
            };
            if route.http_method == *method {
                return Lookup::Found(route, bindings);
            }
            allowed.push(route.http_method.clone());
        }
        if allowed.is_empty() {
            Lookup::NotFound
        } else {
            Lookup::WrongMethod(allowed)
        }
    }
}

fn rule_error(method: &MethodDescriptor, reason: String) -> RouteError {
    RouteError::Rule {
        method: method.full_name().to_owned(),
        reason,
    }
}

fn add_rule(routes: &mut Vec<Route>, method: &MethodDescriptor, rule: &HttpRule, top: bool) -> Result<(), RouteError> {
    let (http_method, path) = match &rule.pattern {
        Some(Pattern::Get(path)) => (http::Method::GET, path),
        Some(Pattern::Put(path)) => (http::Method::PUT, path),
        Some(Pattern::Post(path)) => (http::Method::POST, path),
        Some(Pattern::Delete(path)) => (http::Method::DELETE, path),
        Some(Pattern::Patch(path)) => (http::Method::PATCH, path),
        Some(Pattern::Custom(custom)) => {
            let verb = http::Method::from_bytes(custom.kind.as_bytes())
                .map_err(|_| rule_error(method, format!("bad custom verb `{}`", custom.kind)))?;
            (verb, &custom.path)
        }
        None => return Err(rule_error(method, "no HTTP pattern".into())),
    };
    let template = PathTemplate::parse(path).map_err(|source| RouteError::Template {
        method: method.full_name().to_owned(),
        source,
    })?;
    let body = match rule.body.as_str() {
        "" => BodyTarget::None,
        "*" => BodyTarget::Whole,
        field => {
            if method.input().get_field_by_name(field).is_none() {
                return Err(rule_error(method, format!("body field `{field}` does not exist")));
            }
            BodyTarget::Field(field.to_owned())
        }
    };
    routes.push(Route {
        http_method,
        template,
        body,
        response_body: rule.response_body.clone(),
        method: method.clone(),
        proto_field_names: path.starts_with(ECOSYSTEM_PREFIX),
    });
    if top {
        for additional in &rule.additional_bindings {
            add_rule(routes, method, additional, false)?;
        }
    }
    Ok(())
}
