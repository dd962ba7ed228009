//! `switchyard experiments`: define metrics, create experiments on flags, start and stop them,
//! and read their results as a table (experiment-service).

use clap::{Args, Subcommand, ValueEnum};
use switchyard_api::experiments::v1::{self as pb, experiment_service_client::ExperimentServiceClient};
use tonic::{service::interceptor::InterceptedService, transport::Channel};

use crate::{
    grpc::{self, Bearer},
    output::{Output, print_json, print_table},
};

#[derive(Debug, Args)]
pub struct ExperimentsArgs {
    /// experiment-service's gRPC address.
    #[arg(
        long,
        global = true,
        env = "SY_EXPERIMENT_SERVER",
        default_value = "http://127.0.0.1:9017"
    )]
    server: String,
    /// API key sent as `authorization: Bearer …`; defaults to ./data/admin-api-key, which
    /// `switchyard dev` writes. Starting and stopping also change the flag with it.
    #[arg(long, global = true, env = "SY_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// The project.
    #[arg(long, global = true, default_value = "default")]
    project: String,
    /// How to print results.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
    #[command(subcommand)]
    command: ExperimentsCommand,
}

#[derive(Debug, Subcommand)]
pub enum ExperimentsCommand {
    /// Define (`metrics create`) or list (`metrics list`) metrics.
    Metrics {
        #[command(subcommand)]
        command: MetricsCommand,
    },
    /// A draft experiment on a flag: `--arm control=1 --arm treatment=1` (the first is the control).
    Create(CreateArgs),
    /// The project's experiments and their states.
    List,
    /// Starts an experiment: its rule is written into the flag.
    Start(ChangeArgs),
    /// Stops an experiment with a decision: `--ship VARIANT`, `--roll-back` or neither.
    Stop(StopArgs),
    /// Results of the latest phase: per metric and arm, against the control.
    Results(ResultsArgs),
}

#[derive(Debug, Args)]
pub struct ResultsArgs {
    id: String,
    /// Also per value of this dimension (one of the experiment's `--dimension`s).
    #[arg(long = "by")]
    dimension: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum MetricsCommand {
    Create(MetricArgs),
    List,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Kind {
    Binomial,
    Mean,
    Ratio,
}

#[derive(Debug, Args)]
pub struct MetricArgs {
    id: String,
    #[arg(long, value_enum)]
    r#type: Kind,
    /// The event name that feeds it (binomial and mean).
    #[arg(long, default_value = "")]
    event: String,
    /// Ratio: the numerator and denominator metrics.
    #[arg(long, default_value = "")]
    numerator: String,
    #[arg(long, default_value = "")]
    denominator: String,
    /// Hours after the first exposure that count; 0 until the experiment stops.
    #[arg(long, default_value_t = 0)]
    window_hours: i32,
    /// Lower is better.
    #[arg(long)]
    inverse: bool,
    /// CUPED with the 14 days before exposure.
    #[arg(long)]
    cuped: bool,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    id: String,
    #[arg(long)]
    flag: String,
    /// Environments it runs in.
    #[arg(long = "env", required = true)]
    environments: Vec<String>,
    /// `variant=weight`, control first.
    #[arg(long = "arm", required = true)]
    arms: Vec<String>,
    /// Share of eligible units, 0 to 1.
    #[arg(long, default_value_t = 1.0)]
    coverage: f64,
    #[arg(long = "primary")]
    primary: Vec<String>,
    #[arg(long = "secondary")]
    secondary: Vec<String>,
    #[arg(long = "guardrail")]
    guardrail: Vec<String>,
    /// An exposure attribute results can be broken down by (up to 3).
    #[arg(long = "dimension")]
    dimensions: Vec<String>,
    #[arg(long, default_value = "")]
    hypothesis: String,
    /// Always-valid p-values (safe to read every day).
    #[arg(long)]
    sequential: bool,
    /// Chance to win and risk instead of p-values.
    #[arg(long, conflicts_with = "sequential")]
    bayesian: bool,
}

#[derive(Debug, Args)]
pub struct ChangeArgs {
    id: String,
    #[arg(long, default_value = "")]
    message: String,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    id: String,
    #[arg(long, conflicts_with = "roll_back")]
    ship: Option<String>,
    #[arg(long)]
    roll_back: bool,
    #[arg(long, default_value = "")]
    reason: String,
}

type Client = ExperimentServiceClient<InterceptedService<Channel, Bearer>>;

pub async fn run(args: ExperimentsArgs) -> anyhow::Result<()> {
    let bearer = Bearer::new(Some(&grpc::required_key(args.api_key.as_deref())?))?;
    let mut client = ExperimentServiceClient::with_interceptor(grpc::channel(&args.server)?, bearer);
    let project = &args.project;
    let output = args.output;
    match args.command {
        ExperimentsCommand::Metrics {
            command: MetricsCommand::Create(metric),
        } => {
            let created = client
                .create_metric(pb::CreateMetricRequest {
                    parent: format!("projects/{project}"),
                    metric_id: metric.id.clone(),
                    metric: Some(metric_of(&metric)),
                })
                .await
                .map_err(|status| failure(&status))?
                .into_inner();
            show(&created, output, || println!("{}", created.name))
        }
        ExperimentsCommand::Metrics {
            command: MetricsCommand::List,
        } => {
            let metrics = client
                .list_metrics(pb::ListMetricsRequest {
                    parent: format!("projects/{project}"),
                    page_size: 1000,
                    page_token: String::new(),
                })
                .await
                .map_err(|status| failure(&status))?
                .into_inner()
                .metrics;
            show(&metrics, output, || {
                let rows: Vec<Vec<String>> = metrics
                    .iter()
                    .map(|m| vec![m.name.clone(), type_name(m.r#type).to_owned(), m.event.clone()])
                    .collect();
                print_table(&["METRIC", "TYPE", "EVENT"], &rows);
            })
        }
        ExperimentsCommand::Create(create) => {
            let experiment = experiment_of(&create)?;
            let created = client
                .create_experiment(pb::CreateExperimentRequest {
                    parent: format!("projects/{project}"),
                    experiment_id: create.id,
                    experiment: Some(experiment),
                })
                .await
                .map_err(|status| failure(&status))?
                .into_inner();
            show(&created, output, || println!("{} (draft)", created.name))
        }
        ExperimentsCommand::List => list(&mut client, project, output).await,
        ExperimentsCommand::Start(change) => {
            let started = client
                .start_experiment(pb::StartExperimentRequest {
                    name: name(project, &change.id),
                    etag: String::new(),
                    message: change.message,
                })
                .await
                .map_err(|status| failure(&status))?
                .into_inner();
            show(&started, output, || {
                println!("{} running (phase {})", started.name, started.phases.len())
            })
        }
        ExperimentsCommand::Stop(stop) => {
            let kind = match (&stop.ship, stop.roll_back) {
                (Some(_), _) => pb::DecisionType::Ship,
                (None, true) => pb::DecisionType::RollBack,
                (None, false) => pb::DecisionType::NoDecision,
            };
            let decision = pb::Decision {
                r#type: kind.into(),
                variant: stop.ship.unwrap_or_default(),
                reason: stop.reason,
                ..Default::default()
            };
            let stopped = client
                .stop_experiment(pb::StopExperimentRequest {
                    name: name(project, &stop.id),
                    etag: String::new(),
                    decision: Some(decision),
                })
                .await
                .map_err(|status| failure(&status))?
                .into_inner();
            show(&stopped, output, || println!("{} stopped", stopped.name))
        }
        ExperimentsCommand::Results(args) => results(&mut client, project, &args, output).await,
    }
}

fn name(project: &str, id: &str) -> String {
    format!("projects/{project}/experiments/{id}")
}

fn failure(status: &tonic::Status) -> anyhow::Error {
    grpc::failure(
        status,
        "is experiment-service running at --server / SY_EXPERIMENT_SERVER?",
    )
}

fn show<T: serde::Serialize>(value: &T, output: Output, text: impl FnOnce()) -> anyhow::Result<()> {
    if output == Output::Json {
        return print_json(value);
    }
    text();
    Ok(())
}

fn type_name(value: i32) -> &'static str {
    match pb::MetricType::try_from(value) {
        Ok(pb::MetricType::Binomial) => "binomial",
        Ok(pb::MetricType::Mean) => "mean",
        Ok(pb::MetricType::Ratio) => "ratio",
        _ => "?",
    }
}

fn metric_of(args: &MetricArgs) -> pb::Metric {
    pb::Metric {
        r#type: match args.r#type {
            Kind::Binomial => pb::MetricType::Binomial,
            Kind::Mean => pb::MetricType::Mean,
            Kind::Ratio => pb::MetricType::Ratio,
        }
        .into(),
        event: args.event.clone(),
        numerator: args.numerator.clone(),
        denominator: args.denominator.clone(),
        window_hours: args.window_hours,
        inverse: args.inverse,
        cuped: args.cuped.then_some(pb::Cuped {
            enabled: true,
            lookback_days: 0,
        }),
        ..pb::Metric::default()
    }
}

fn experiment_of(args: &CreateArgs) -> anyhow::Result<pb::Experiment> {
    let arms = args
        .arms
        .iter()
        .map(|arm| {
            let (variant, weight) = arm.split_once('=').unwrap_or((arm, "1"));
            let weight: f64 = weight
                .parse()
                .map_err(|_| anyhow::anyhow!("--arm {arm}: the weight after `=` is a number"))?;
            Ok(pb::Arm {
                variant: variant.to_owned(),
                weight,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(pb::Experiment {
        flag: args.flag.clone(),
        environments: args.environments.clone(),
        arms,
        coverage: args.coverage,
        hypothesis: args.hypothesis.clone(),
        primary_metrics: args.primary.clone(),
        secondary_metrics: args.secondary.clone(),
        guardrail_metrics: args.guardrail.clone(),
        dimensions: args.dimensions.clone(),
        analysis: Some(pb::Analysis {
            engine: if args.bayesian {
                pb::StatsEngine::Bayesian
            } else {
                pb::StatsEngine::Frequentist
            }
            .into(),
            sequential: args.sequential,
            ..pb::Analysis::default()
        }),
        ..pb::Experiment::default()
    })
}

async fn list(client: &mut Client, project: &str, output: Output) -> anyhow::Result<()> {
    let experiments = client
        .list_experiments(pb::ListExperimentsRequest {
            parent: format!("projects/{project}"),
            page_size: 1000,
            ..Default::default()
        })
        .await
        .map_err(|status| failure(&status))?
        .into_inner()
        .experiments;
    show(&experiments, output, || {
        let rows: Vec<Vec<String>> = experiments
            .iter()
            .map(|e| {
                let state = pb::ExperimentState::try_from(e.state).map_or("?", |state| state.as_str_name());
                vec![
                    e.name.clone(),
                    state.trim_start_matches("EXPERIMENT_STATE_").to_lowercase(),
                    e.flag.clone(),
                    e.phases.len().to_string(),
                ]
            })
            .collect();
        print_table(&["EXPERIMENT", "STATE", "FLAG", "PHASES"], &rows);
    })
}

async fn results(client: &mut Client, project: &str, args: &ResultsArgs, output: Output) -> anyhow::Result<()> {
    let id = &args.id;
    let experiment = client
        .get_experiment(pb::GetExperimentRequest {
            name: name(project, id),
        })
        .await
        .map_err(|status| failure(&status))?
        .into_inner();
    let absolute = experiment
        .analysis
        .is_some_and(|analysis| analysis.difference == i32::from(pb::DifferenceType::Absolute));
    let results = client
        .get_results(pb::GetResultsRequest {
            name: name(project, id),
            phase: 0,
            dimension: args.dimension.clone().unwrap_or_default(),
        })
        .await
        .map_err(|status| failure(&status))?
        .into_inner();
    show(&results, output, || print_results(&results, absolute))
}

/// Effects print as percentages when relative (the default), as differences when absolute.
fn print_results(results: &pb::Results, absolute: bool) {
    print_metrics(&results.metrics, absolute);
    print_health(results);
    let Some(breakdown) = &results.breakdown else {
        return;
    };
    for slice in &breakdown.slices {
        let label = match pb::SliceKind::try_from(slice.kind) {
            Ok(pb::SliceKind::Missing) => "(none)".to_owned(),
            Ok(pb::SliceKind::Other) => "(other)".to_owned(),
            _ => slice.value.clone(),
        };
        println!(
            "\n{} = {label} · sample ratio p {:.4}",
            breakdown.dimension, slice.srm_p_value
        );
        print_metrics(&slice.metrics, absolute);
    }
}

fn print_metrics(metrics: &[pb::MetricResult], absolute: bool) {
    let mut rows = Vec::new();
    for metric in metrics {
        for arm in &metric.arms {
            let mut row = vec![
                format!("{} ({})", metric.metric, metric.role),
                arm.variant.clone(),
                arm.units.to_string(),
                format!("{:.4}", arm.mean),
            ];
            match &arm.comparison {
                None => row.extend(["control".to_owned(), String::new(), String::new()]),
                Some(c) if !c.undefined_reason.is_empty() => {
                    row.extend([c.undefined_reason.clone(), String::new(), String::new()])
                }
                Some(c) => {
                    let verdict = if c.chance_to_win > 0.0 || c.p_value == 0.0 {
                        format!("chance to win {:.1}%", c.chance_to_win * 100.0)
                    } else {
                        format!("p {:.4} (adjusted {:.4})", c.p_value, c.adjusted_p_value)
                    };
                    let mark = if c.significant { " *" } else { "" };
                    row.extend([
                        effect(c.effect, absolute),
                        format!("[{}, {}]", effect(c.ci_lower, absolute), effect(c.ci_upper, absolute)),
                        format!("{verdict}{mark}"),
                    ]);
                }
            }
            rows.push(row);
        }
    }
    print_table(
        &["METRIC", "ARM", "UNITS", "MEAN", "EFFECT", "INTERVAL", "VERDICT"],
        &rows,
    );
}

fn print_health(results: &pb::Results) {
    if let Some(health) = &results.health {
        let srm = if health.srm_detected { "MISMATCH" } else { "ok" };
        println!(
            "phase {} · sample ratio {srm} (p {:.4}) · {} units in several arms{}{}",
            results.phase,
            health.srm_p_value,
            health.multiple_exposures,
            if health.too_few_units {
                " · too few units yet"
            } else {
                ""
            },
            if results.pending_batches > 0 {
                format!(" · {} batches not yet counted", results.pending_batches)
            } else {
                String::new()
            }
        );
        if !health.guardrails_failing.is_empty() {
            println!("guardrails failing: {}", health.guardrails_failing.join(", "));
        }
    }
}

fn effect(value: f64, absolute: bool) -> String {
    if absolute {
        format!("{value:+.4}")
    } else {
        format!("{:+.2}%", value * 100.0)
    }
}
