//! `flags evaluate` and `flags evaluate-all`: what a caller with this context would get, from
//! the same in-memory evaluation the flagd and OFREP protocols use. No API key is needed; one
//! is sent when there is one, so the caller sees its own tenant's flags.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use switchyard_api::flags::v1 as pb;

use super::{Session, client::Checked as _, document, text};
use crate::output::print_json;

/// Which flags to evaluate and for what context; shared by both commands.
#[derive(Debug, Args)]
pub struct Selection {
    /// Which flags: a flagd selector — `flagSetId=<id>`, `source=<name>` or a bare source name
    /// (a project environment's is `projects/<p>/environments/<e>`, a flag file's its path).
    /// Every source when omitted, later ones overriding earlier ones.
    #[arg(long, conflicts_with = "env")]
    selector: Option<String>,
    /// The flags of this environment of the project: short for
    /// `--selector projects/<project>/environments/<ENV>`.
    #[arg(long)]
    env: Option<String>,
    /// The evaluation context as a JSON object, such as '{"targetingKey": "user-1"}'.
    #[arg(long, conflicts_with = "context_file")]
    context: Option<String>,
    /// The evaluation context from a JSON or YAML file holding one object.
    #[arg(long)]
    context_file: Option<PathBuf>,
}

impl Selection {
    fn selector(&self, session: &Session) -> anyhow::Result<String> {
        match (&self.selector, &self.env) {
            (Some(selector), _) => Ok(selector.clone()),
            (None, Some(env)) => session.environment(env),
            (None, None) => Ok(String::new()),
        }
    }

    fn context(&self) -> anyhow::Result<Option<pbjson_types::Struct>> {
        if let Some(path) = &self.context_file {
            return document::read_object(path, "the context").map(Some);
        }
        let Some(text) = &self.context else {
            return Ok(None);
        };
        let value = serde_json::from_str(text).map_err(|error| anyhow::anyhow!("--context is not JSON: {error}"))?;
        document::object(value, "--context").map(Some)
    }
}

/// The value type a caller expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ValueType {
    Boolean,
    String,
    Integer,
    Float,
    Object,
}

impl ValueType {
    fn proto(self) -> pb::ValueType {
        match self {
            ValueType::Boolean => pb::ValueType::Boolean,
            ValueType::String => pb::ValueType::String,
            ValueType::Integer => pb::ValueType::Integer,
            ValueType::Float => pb::ValueType::Float,
            ValueType::Object => pb::ValueType::Object,
        }
    }
}

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// The flag key.
    flag: String,
    #[command(flatten)]
    selection: Selection,
    /// The type the caller expects; a value of another type is a TYPE_MISMATCH error.
    #[arg(long = "type", value_enum)]
    value_type: Option<ValueType>,
}

#[derive(Debug, Args)]
pub struct EvaluateAllArgs {
    #[command(flatten)]
    selection: Selection,
}

/// Prints the evaluation, then fails when it did: a script checking a flag should not mistake
/// "flag not found" for a served default.
pub async fn one(session: &mut Session, args: EvaluateArgs) -> anyhow::Result<()> {
    let request = pb::EvaluateRequest {
        selector: args.selection.selector(session)?,
        flag: args.flag,
        context: args.selection.context()?,
        expected_type: args.value_type.map_or(0, |value_type| value_type.proto() as i32),
    };
    let evaluation = session.client.evaluate(request).await.checked()?;
    if session.json() {
        print_json(&evaluation)?;
    } else if evaluation.error_code.is_empty() {
        text::print_evaluation(&evaluation);
    }
    if evaluation.error_code.is_empty() {
        return Ok(());
    }
    anyhow::bail!(
        "{}: {} ({})",
        evaluation.flag,
        evaluation.error_message,
        evaluation.error_code
    )
}

pub async fn all(session: &mut Session, args: EvaluateAllArgs) -> anyhow::Result<()> {
    let request = pb::EvaluateAllRequest {
        selector: args.selection.selector(session)?,
        context: args.selection.context()?,
    };
    let response = session.client.evaluate_all(request).await.checked()?;
    if session.json() {
        return print_json(&response);
    }
    if response.evaluations.is_empty() {
        println!("no flags in this selection");
        return Ok(());
    }
    text::print_evaluations(&response.evaluations);
    Ok(())
}
