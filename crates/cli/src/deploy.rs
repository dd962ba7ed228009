//! `switchyard deploy`: move a config release to a growing share of its clients with a
//! strategy, watch it live, and pause, resume, promote, stop or revert it (config-service's
//! DeliveryService).

use std::io::{IsTerminal, Write};

use clap::{Args, Subcommand};
use futures::StreamExt;
use switchyard_api::config::v1::{self as pb, delivery_service_client::DeliveryServiceClient};
use tonic::{service::interceptor::InterceptedService, transport::Channel};

use crate::{
    config::client::{EnvironmentArgs, ServerArgs},
    grpc::{self, Bearer},
    output::{Output, print_json, print_table, read, time},
};

#[derive(Debug, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    at: EnvironmentArgs,
    #[command(subcommand)]
    command: DeployCommand,
}

#[derive(Debug, Subcommand)]
pub enum DeployCommand {
    /// Deploys a config: the current draft as a new release (or `--release N`) with a strategy.
    Start(StartArgs),
    /// One deployment (its state, share, step, gates), or the environment's latest ones.
    Status {
        number: Option<u64>,
    },
    /// Follows a deployment live: a progress bar with the step, the share and the gates, and
    /// every event, until it ends.
    Watch {
        number: u64,
    },
    Pause(OperateArgs),
    Resume(OperateArgs),
    /// Skips the remaining steps: 100% and the bake now (promote again to skip the bake).
    Promote(OperateArgs),
    /// Rolls back: every client on the previous release at once.
    Stop(OperateArgs),
    /// Reverts a completed deployment (within 72 hours): the previous release at once.
    Revert(OperateArgs),
    /// The predefined strategies and the project's own.
    Strategies,
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// The config id.
    config: String,
    /// AllAtOnce, Linear50PercentEvery30Seconds, Linear20PercentEvery6Minutes,
    /// Canary10Percent20Minutes, or one of the project's strategies.
    #[arg(long, default_value = "Canary10Percent20Minutes")]
    strategy: String,
    /// An existing release to deploy instead of the draft.
    #[arg(long, default_value_t = 0)]
    release: u64,
    /// Roll back when clients report more errors than this rate (0-1) on the new release
    /// (ReportHealth), checked every 10 s once 100 reports came in.
    #[arg(long)]
    max_error_rate: Option<f64>,
    /// Gates as a JSON array of `Gate` messages (proto3 JSON), for Prometheus queries.
    #[arg(long)]
    gates: Option<std::path::PathBuf>,
    #[arg(long, default_value = "")]
    description: String,
    /// An http:// URL asked before the first step; it may refuse the deployment.
    #[arg(long, default_value = "")]
    pre_start_webhook: String,
    /// http:// URLs told of every event.
    #[arg(long = "notify")]
    notify: Vec<String>,
    /// Follow it live after starting it.
    #[arg(long)]
    watch: bool,
}

#[derive(Debug, Args)]
pub struct OperateArgs {
    number: u64,
    #[arg(long, default_value = "")]
    reason: String,
}

type Client = DeliveryServiceClient<InterceptedService<Channel, Bearer>>;

fn failure(status: &tonic::Status) -> anyhow::Error {
    grpc::failure(status, "is config-service running at --server / SY_CONFIG_SERVER?")
}

pub async fn run(args: DeployArgs) -> anyhow::Result<()> {
    let (channel, bearer) = args.server.connect()?;
    let mut client = DeliveryServiceClient::with_interceptor(channel, bearer);
    let parent = args.at.parent();
    let name = |number: u64| format!("{parent}/deployments/{number}");
    let output = args.at.output;
    match args.command {
        DeployCommand::Start(start) => {
            let follow = start.watch;
            let deployment = deployment_of(start)?;
            let request = pb::CreateDeploymentRequest {
                parent: parent.clone(),
                deployment: Some(deployment),
            };
            let created = client
                .create_deployment(request)
                .await
                .map_err(|status| failure(&status))?
                .into_inner();
            if follow {
                println!("{} created", created.name);
                return watch(&mut client, &created.name, output).await;
            }
            show_one(&created, output)
        }
        DeployCommand::Status { number: Some(number) } => {
            let found = client
                .get_deployment(pb::GetDeploymentRequest { name: name(number) })
                .await
                .map_err(|status| failure(&status))?
                .into_inner();
            show_one(&found, output)
        }
        DeployCommand::Status { number: None } => {
            let found = client
                .list_deployments(pb::ListDeploymentsRequest {
                    parent,
                    page_size: 20,
                    ..Default::default()
                })
                .await
                .map_err(|status| failure(&status))?
                .into_inner()
                .deployments;
            if output == Output::Json {
                return print_json(&found);
            }
            let rows: Vec<Vec<String>> = found.iter().map(row).collect();
            print_table(
                &[
                    "DEPLOYMENT",
                    "CONFIG",
                    "RELEASE",
                    "STATE",
                    "SHARE",
                    "STRATEGY",
                    "UPDATED",
                ],
                &rows,
            );
            Ok(())
        }
        DeployCommand::Watch { number } => watch(&mut client, &name(number), output).await,
        DeployCommand::Pause(operate) => act(&mut client, name(operate.number), "pause", &operate.reason, output).await,
        DeployCommand::Resume(operate) => {
            act(&mut client, name(operate.number), "resume", &operate.reason, output).await
        }
        DeployCommand::Promote(operate) => {
            act(&mut client, name(operate.number), "promote", &operate.reason, output).await
        }
        DeployCommand::Stop(operate) => act(&mut client, name(operate.number), "stop", &operate.reason, output).await,
        DeployCommand::Revert(operate) => {
            act(&mut client, name(operate.number), "revert", &operate.reason, output).await
        }
        DeployCommand::Strategies => {
            let strategies = client
                .list_strategies(pb::ListStrategiesRequest {
                    parent: format!("projects/{}", args.at.project),
                })
                .await
                .map_err(|status| failure(&status))?
                .into_inner()
                .strategies;
            if output == Output::Json {
                return print_json(&strategies);
            }
            let rows: Vec<Vec<String>> = strategies
                .iter()
                .map(|strategy| {
                    let id = strategy.name.rsplit('/').next().unwrap_or_default().to_owned();
                    vec![id, strategy.description.clone()]
                })
                .collect();
            print_table(&["STRATEGY", "DESCRIPTION"], &rows);
            Ok(())
        }
    }
}

fn deployment_of(start: StartArgs) -> anyhow::Result<pb::Deployment> {
    let mut gates: Vec<pb::Gate> = match &start.gates {
        Some(path) => serde_json::from_str(&read(path)?)
            .map_err(|error| anyhow::anyhow!("{}: not a JSON array of gates: {error}", path.display()))?,
        None => Vec::new(),
    };
    if let Some(rate) = start.max_error_rate {
        gates.push(pb::Gate {
            name: "client-errors".into(),
            check: Some(pb::gate::Check::ClientHealth(pb::ClientHealthCheck {
                max_error_rate: rate,
                max_relative_increase: 0.0,
                min_sample: 100,
            })),
            interval: Some(pbjson_types::Duration { seconds: 10, nanos: 0 }),
            failure_limit: 0,
            consecutive_successes: 0,
        });
    }
    Ok(pb::Deployment {
        config: start.config,
        release: start.release,
        strategy: start.strategy,
        gates,
        description: start.description,
        pre_start_webhook: start.pre_start_webhook,
        notification_webhooks: start.notify,
        ..Default::default()
    })
}

async fn act(client: &mut Client, name: String, operation: &str, reason: &str, output: Output) -> anyhow::Result<()> {
    let request = pb::OperateDeploymentRequest {
        name,
        reason: reason.to_owned(),
    };
    let result = match operation {
        "pause" => client.pause_deployment(request).await,
        "resume" => client.resume_deployment(request).await,
        "promote" => client.promote_deployment(request).await,
        "stop" => client.stop_deployment(request).await,
        _ => client.revert_deployment(request).await,
    };
    let deployment = result.map_err(|status| failure(&status))?.into_inner();
    show_one(&deployment, output)
}

fn state_name(state: i32) -> &'static str {
    pb::deployment::State::try_from(state).map_or("?", |state| state.as_str_name())
}

fn row(deployment: &pb::Deployment) -> Vec<String> {
    vec![
        deployment.name.rsplit('/').next().unwrap_or_default().to_owned(),
        deployment.config.clone(),
        format!("{} → {}", deployment.previous_release, deployment.release),
        state_name(deployment.state).to_owned(),
        format!("{}%", deployment.percentage),
        deployment.strategy.clone(),
        time(deployment.update_time.as_ref()),
    ]
}

fn show_one(deployment: &pb::Deployment, output: Output) -> anyhow::Result<()> {
    if output == Output::Json {
        return print_json(deployment);
    }
    println!("{}", progress_line(deployment));
    if !deployment.reason.is_empty() {
        println!("  reason: {}", deployment.reason);
    }
    for status in &deployment.gate_status {
        println!(
            "  gate {}: {} ({} failures) {}",
            status.gate,
            if status.last_outcome.is_empty() {
                "not checked yet"
            } else {
                &status.last_outcome
            },
            status.failures,
            status.last_detail
        );
    }
    Ok(())
}

/// `DEPLOYING [########------------] 40%  step 2/5  release 1 → 2  gates: errors passed`.
fn progress_line(deployment: &pb::Deployment) -> String {
    const WIDTH: usize = 20;
    let filled = ((deployment.percentage / 100.0) * WIDTH as f64).round() as usize;
    let bar: String = "#".repeat(filled.min(WIDTH)) + &"-".repeat(WIDTH - filled.min(WIDTH));
    use pb::deployment::State;
    let finished = matches!(
        State::try_from(deployment.state),
        Ok(State::Complete | State::RolledBack | State::Reverted)
    );
    let step = match () {
        () if finished => "ended".to_owned(),
        () if deployment.step > deployment.step_count => "baking".to_owned(),
        () => format!("step {}/{}", deployment.step, deployment.step_count),
    };
    let gates: Vec<String> = deployment
        .gate_status
        .iter()
        .map(|status| {
            let outcome = if status.last_outcome.is_empty() {
                "waiting"
            } else {
                &status.last_outcome
            };
            format!("{} {outcome}", status.gate)
        })
        .collect();
    let gates = if gates.is_empty() {
        String::new()
    } else {
        format!("  gates: {}", gates.join(", "))
    };
    format!(
        "{:<12} [{bar}] {:>5.1}%  {step}  release {} → {}{gates}",
        state_name(deployment.state),
        deployment.percentage,
        deployment.previous_release,
        deployment.release
    )
}

/// Streams WatchDeployment: events as lines, the progress bar redrawn in place on a terminal.
async fn watch(client: &mut Client, name: &str, output: Output) -> anyhow::Result<()> {
    let mut updates = client
        .watch_deployment(pb::WatchDeploymentRequest {
            name: name.to_owned(),
            after_sequence: 0,
        })
        .await
        .map_err(|status| failure(&status))?
        .into_inner();
    let terminal = std::io::stdout().is_terminal() && output == Output::Text;
    let mut last: Option<pb::Deployment> = None;
    while let Some(update) = updates.next().await {
        let update = update.map_err(|status| failure(&status))?;
        if output == Output::Json {
            print_json(&update)?;
            continue;
        }
        if terminal {
            print!("\r\x1b[2K");
        }
        for event in &update.events {
            println!(
                "{}  {:<18} {:>5.1}%  {}  {}",
                time(event.create_time.as_ref()),
                event.kind,
                event.percentage,
                event.actor,
                event.detail
            );
        }
        if let Some(deployment) = &update.deployment {
            if terminal {
                print!("{}", progress_line(deployment));
                std::io::stdout().flush()?;
            } else {
                println!("{}", progress_line(deployment));
            }
            last = Some(deployment.clone());
        }
    }
    if terminal {
        println!();
    }
    if let Some(deployment) = last
        && !deployment.reason.is_empty()
    {
        println!("reason: {}", deployment.reason);
    }
    Ok(())
}
