//! `switchyard freeze`: the project's freeze windows (when nothing changes) and the report of
//! break-glass overrides (config-service's GovernanceService).

use clap::{Args, Subcommand};
use switchyard_api::config::v1::{self as pb, governance_service_client::GovernanceServiceClient};

use crate::{
    config::client::ServerArgs,
    grpc,
    output::{Output, print_json, print_table, time},
};

#[derive(Debug, Args)]
pub struct FreezeArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The project.
    #[arg(long, global = true, env = "SY_PROJECT", default_value = "default")]
    project: String,
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
    #[command(subcommand)]
    command: FreezeCommand,
}

#[derive(Debug, Subcommand)]
pub enum FreezeCommand {
    /// The project's windows: open now, and when each opens next.
    List,
    /// Adds a window: `--from`/`--until` (RFC 3339), or `--rrule` with `--start` (local) and
    /// `--duration`, or `--cron` with `--duration`; read in `--zone`.
    Add(Box<AddArgs>),
    Remove {
        id: String,
    },
    /// Every break-glass override in the project, newest first.
    Report,
}

#[derive(Debug, Args)]
pub struct AddArgs {
    id: String,
    #[arg(long, default_value = "")]
    title: String,
    /// IANA zone, such as Asia/Dhaka.
    #[arg(long, default_value = "UTC")]
    zone: String,
    /// Only these environments (every one when none is given).
    #[arg(long = "env")]
    environments: Vec<String>,
    #[arg(long)]
    from: Option<String>,
    #[arg(long)]
    until: Option<String>,
    /// An RFC 5545 RRULE, such as FREQ=WEEKLY;BYDAY=FR.
    #[arg(long)]
    rrule: Option<String>,
    /// The first occurrence's local start, such as 2026-01-02T12:30.
    #[arg(long, default_value = "")]
    start: String,
    /// A cron expression, such as "0 0 * * *".
    #[arg(long)]
    cron: Option<String>,
    /// How long each occurrence lasts: 2h, 30m, 90s.
    #[arg(long, default_value = "1h")]
    duration: String,
    /// Pause running deployments instead of holding their step.
    #[arg(long)]
    pause: bool,
}

fn failure(status: &tonic::Status) -> anyhow::Error {
    grpc::failure(status, "is config-service running at --server / SY_CONFIG_SERVER?")
}

fn timestamp(field: &str, text: &str) -> anyhow::Result<pbjson_types::Timestamp> {
    let parsed = chrono::DateTime::parse_from_rfc3339(text)
        .map_err(|_| anyhow::anyhow!("--{field} {text}: an RFC 3339 time such as 2027-03-09T00:00:00+06:00"))?;
    Ok(pbjson_types::Timestamp {
        seconds: parsed.timestamp(),
        nanos: 0,
    })
}

fn schedule_of(add: &AddArgs) -> anyhow::Result<pb::freeze_window::Schedule> {
    let duration = switchyard_platform::settings::parse_duration(&add.duration)
        .ok_or_else(|| anyhow::anyhow!("--duration {}: such as 2h, 30m or 90s", add.duration))?;
    let duration = Some(pbjson_types::Duration {
        seconds: i64::try_from(duration.as_secs()).unwrap_or(i64::MAX),
        nanos: 0,
    });
    if let (Some(from), Some(until)) = (&add.from, &add.until) {
        return Ok(pb::freeze_window::Schedule::Once(pb::OneOffWindow {
            start_time: Some(timestamp("from", from)?),
            end_time: Some(timestamp("until", until)?),
        }));
    }
    if let Some(rrule) = &add.rrule {
        return Ok(pb::freeze_window::Schedule::Recurring(pb::RecurringWindow {
            start: add.start.clone(),
            rrule: rrule.clone(),
            duration,
        }));
    }
    if let Some(cron) = &add.cron {
        return Ok(pb::freeze_window::Schedule::Cron(pb::CronWindow {
            expression: cron.clone(),
            duration,
        }));
    }
    anyhow::bail!("give --from and --until, --rrule (with --start), or --cron")
}

pub async fn run(args: FreezeArgs) -> anyhow::Result<()> {
    let (channel, bearer) = args.server.connect()?;
    let mut client = GovernanceServiceClient::with_interceptor(channel, bearer);
    let parent = format!("projects/{}", args.project);
    let output = args.output;
    match args.command {
        FreezeCommand::List => {
            let windows = client
                .list_freeze_windows(pb::ListFreezeWindowsRequest { parent })
                .await
                .map_err(|status| failure(&status))?
                .into_inner()
                .freeze_windows;
            if output == Output::Json {
                return print_json(&windows);
            }
            let rows: Vec<Vec<String>> = windows
                .iter()
                .map(|window| {
                    let open = if window.open_now {
                        format!("until {}", time(window.open_until.as_ref()))
                    } else {
                        "no".to_owned()
                    };
                    vec![
                        window.name.rsplit('/').next().unwrap_or_default().to_owned(),
                        window.title.clone(),
                        window.time_zone.clone(),
                        if window.environments.is_empty() {
                            "all".to_owned()
                        } else {
                            window.environments.join(",")
                        },
                        open,
                        time(window.next_open_time.as_ref()),
                    ]
                })
                .collect();
            print_table(&["WINDOW", "TITLE", "ZONE", "ENVS", "OPEN", "NEXT"], &rows);
            Ok(())
        }
        FreezeCommand::Add(add) => {
            let schedule = schedule_of(&add)?;
            let during = if add.pause {
                pb::freeze_window::During::Pause
            } else {
                pb::freeze_window::During::Hold
            };
            let created = client
                .create_freeze_window(pb::CreateFreezeWindowRequest {
                    parent,
                    freeze_window_id: add.id,
                    freeze_window: Some(pb::FreezeWindow {
                        title: add.title,
                        environments: add.environments,
                        time_zone: add.zone,
                        schedule: Some(schedule),
                        deployments: during as i32,
                        ..Default::default()
                    }),
                })
                .await
                .map_err(|status| failure(&status))?
                .into_inner();
            if output == Output::Json {
                return print_json(&created);
            }
            let state = if created.open_now { "open now" } else { "not open now" };
            println!(
                "{} added ({state}; next opens {})",
                created.name,
                time(created.next_open_time.as_ref())
            );
            Ok(())
        }
        FreezeCommand::Remove { id } => {
            client
                .delete_freeze_window(pb::DeleteFreezeWindowRequest {
                    name: format!("{parent}/freezeWindows/{id}"),
                })
                .await
                .map_err(|status| failure(&status))?;
            println!("{parent}/freezeWindows/{id} removed");
            Ok(())
        }
        FreezeCommand::Report => {
            let uses = client
                .list_break_glass_uses(pb::ListBreakGlassUsesRequest {
                    parent,
                    ..Default::default()
                })
                .await
                .map_err(|status| failure(&status))?
                .into_inner()
                .uses;
            if output == Output::Json {
                return print_json(&uses);
            }
            let rows: Vec<Vec<String>> = uses
                .iter()
                .map(|used| {
                    vec![
                        time(used.create_time.as_ref()),
                        used.actor.clone(),
                        used.action.clone(),
                        used.resource.clone(),
                        used.windows.join(","),
                        used.reason.clone(),
                    ]
                })
                .collect();
            print_table(&["TIME", "WHO", "ACTION", "RESOURCE", "WINDOWS", "REASON"], &rows);
            Ok(())
        }
    }
}
