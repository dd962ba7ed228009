//! `switchyard changes`: change requests for protected environments — draft, submit, review,
//! approve or reject, apply now or at a local time (config-service's GovernanceService).

use clap::{Args, Subcommand};
use switchyard_api::config::v1::{self as pb, governance_service_client::GovernanceServiceClient};
use tonic::{service::interceptor::InterceptedService, transport::Channel};

use crate::{
    config::client::{EnvironmentArgs, ServerArgs},
    grpc::{self, Bearer},
    output::{Output, compact, print_json, print_table, time},
};

#[derive(Debug, Args)]
pub struct ChangesArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    at: EnvironmentArgs,
    #[command(subcommand)]
    command: ChangesCommand,
}

#[derive(Debug, Subcommand)]
pub enum ChangesCommand {
    /// The environment's change requests, newest first.
    List,
    /// One change request: its approvals, and what moved if it no longer applies.
    Show {
        number: u64,
    },
    /// Drafts a change: publish CONFIG's draft as it is now, or `--rollback-to N`.
    Create(CreateArgs),
    /// Sends a draft for review.
    Submit {
        number: u64,
    },
    Approve(CommentArgs),
    Reject(CommentArgs),
    Cancel {
        number: u64,
    },
    /// Takes the config's current state as the base; approvals are revoked.
    Rebase {
        number: u64,
    },
    /// Applies an approved change now.
    Apply {
        number: u64,
    },
    /// Applies an approved change at a local time: `--at 2026-12-12T00:30 --zone Asia/Dhaka`.
    Schedule(ScheduleArgs),
    /// Protects the environment: `--required 2 --role publisher [--approver alice@shop]`.
    Protect(ProtectArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    config: String,
    #[arg(long)]
    title: String,
    #[arg(long, default_value = "")]
    description: String,
    /// Roll back to this release instead of publishing the draft.
    #[arg(long)]
    rollback_to: Option<u64>,
}

#[derive(Debug, Args)]
pub struct CommentArgs {
    number: u64,
    #[arg(long, default_value = "")]
    comment: String,
}

#[derive(Debug, Args)]
pub struct ScheduleArgs {
    number: u64,
    #[arg(long)]
    at: String,
    #[arg(long, default_value = "UTC")]
    zone: String,
}

#[derive(Debug, Args)]
pub struct ProtectArgs {
    #[arg(long, default_value_t = 1)]
    required: u32,
    #[arg(long = "role")]
    roles: Vec<String>,
    #[arg(long = "approver")]
    approvers: Vec<String>,
    #[arg(long)]
    allow_self_approval: bool,
    /// Hours an approval counts (0: until applied).
    #[arg(long, default_value_t = 0)]
    approval_hours: i64,
}

type Client = GovernanceServiceClient<InterceptedService<Channel, Bearer>>;

fn failure(status: &tonic::Status) -> anyhow::Error {
    grpc::failure(status, "is config-service running at --server / SY_CONFIG_SERVER?")
}

pub async fn run(args: ChangesArgs) -> anyhow::Result<()> {
    let (channel, bearer) = args.server.connect()?;
    let mut client = GovernanceServiceClient::with_interceptor(channel, bearer);
    let parent = args.at.parent();
    let name = |number: u64| format!("{parent}/changeRequests/{number}");
    let output = args.at.output;
    let change = match args.command {
        ChangesCommand::List => {
            let found = client
                .list_change_requests(pb::ListChangeRequestsRequest {
                    parent,
                    page_size: 50,
                    ..Default::default()
                })
                .await
                .map_err(|status| failure(&status))?
                .into_inner()
                .change_requests;
            if output == Output::Json {
                return print_json(&found);
            }
            let rows: Vec<Vec<String>> = found.iter().map(row).collect();
            print_table(&["CHANGE", "CONFIG", "STATE", "APPROVALS", "AUTHOR", "TITLE"], &rows);
            return Ok(());
        }
        ChangesCommand::Show { number } => client
            .get_change_request(pb::GetChangeRequestRequest { name: name(number) })
            .await
            .map_err(|status| failure(&status))?
            .into_inner(),
        ChangesCommand::Create(create) => {
            let operation = match create.rollback_to {
                Some(release) => pb::change_request::Operation::Rollback(pb::RollbackChange {
                    release,
                    message: String::new(),
                }),
                None => pb::change_request::Operation::Publish(pb::PublishChange::default()),
            };
            client
                .create_change_request(pb::CreateChangeRequestRequest {
                    parent,
                    change_request: Some(pb::ChangeRequest {
                        config: create.config,
                        title: create.title,
                        description: create.description,
                        operation: Some(operation),
                        ..Default::default()
                    }),
                })
                .await
                .map_err(|status| failure(&status))?
                .into_inner()
        }
        ChangesCommand::Submit { number } => act(&mut client, name(number), "submit", "").await?,
        ChangesCommand::Approve(args) => act(&mut client, name(args.number), "approve", &args.comment).await?,
        ChangesCommand::Reject(args) => act(&mut client, name(args.number), "reject", &args.comment).await?,
        ChangesCommand::Cancel { number } => act(&mut client, name(number), "cancel", "").await?,
        ChangesCommand::Rebase { number } => act(&mut client, name(number), "rebase", "").await?,
        ChangesCommand::Apply { number } => act(&mut client, name(number), "apply", "").await?,
        ChangesCommand::Schedule(schedule) => client
            .schedule_change_request(pb::ScheduleChangeRequestRequest {
                name: name(schedule.number),
                local_time: schedule.at,
                time_zone: schedule.zone,
            })
            .await
            .map_err(|status| failure(&status))?
            .into_inner(),
        ChangesCommand::Protect(protect) => {
            let policy = client
                .set_approval_policy(pb::SetApprovalPolicyRequest {
                    approval_policy: Some(pb::ApprovalPolicy {
                        name: format!("{parent}/approvalPolicy"),
                        required_approvals: protect.required,
                        approver_roles: protect.roles,
                        approver_principals: protect.approvers,
                        allow_self_approval: protect.allow_self_approval,
                        approval_ttl: (protect.approval_hours > 0).then_some(pbjson_types::Duration {
                            seconds: protect.approval_hours * 3600,
                            nanos: 0,
                        }),
                        etag: String::new(),
                    }),
                })
                .await
                .map_err(|status| failure(&status))?
                .into_inner();
            if output == Output::Json {
                return print_json(&policy);
            }
            println!("{} protected: {} approval(s) needed", parent, policy.required_approvals);
            return Ok(());
        }
    };
    show(&change, output)
}

async fn act(client: &mut Client, name: String, action: &str, comment: &str) -> anyhow::Result<pb::ChangeRequest> {
    let request = pb::ChangeRequestActionRequest {
        name,
        comment: comment.to_owned(),
    };
    let result = match action {
        "submit" => client.submit_change_request(request).await,
        "approve" => client.approve_change_request(request).await,
        "reject" => client.reject_change_request(request).await,
        "cancel" => client.cancel_change_request(request).await,
        "rebase" => client.rebase_change_request(request).await,
        _ => client.apply_change_request(request).await,
    };
    Ok(result.map_err(|status| failure(&status))?.into_inner())
}

fn state_name(state: i32) -> &'static str {
    pb::change_request::State::try_from(state).map_or("?", |state| state.as_str_name())
}

fn approvals(change: &pb::ChangeRequest) -> String {
    let counting = change.approvals.iter().filter(|approval| approval.counts).count();
    format!("{counting}/{}", change.required_approvals)
}

fn row(change: &pb::ChangeRequest) -> Vec<String> {
    vec![
        change.name.rsplit('/').next().unwrap_or_default().to_owned(),
        change.config.clone(),
        state_name(change.state).to_owned(),
        approvals(change),
        change.author.clone(),
        change.title.clone(),
    ]
}

fn show(change: &pb::ChangeRequest, output: Output) -> anyhow::Result<()> {
    if output == Output::Json {
        return print_json(change);
    }
    println!("{}  {}  {}", change.name, state_name(change.state), change.title);
    println!(
        "  config {} (base release {}), by {}",
        change.config, change.base_release, change.author
    );
    println!("  approvals {}", approvals(change));
    for approval in &change.approvals {
        let counts = if approval.counts { "" } else { " (expired)" };
        println!(
            "    {} at {}{counts} {}",
            approval.approver,
            time(approval.create_time.as_ref()),
            approval.comment
        );
    }
    if change.schedule_time.is_some() {
        println!(
            "  scheduled for {} ({})",
            time(change.schedule_time.as_ref()),
            change.schedule_zone
        );
    }
    if !change.rejection.is_empty() {
        println!("  rejected by {}: {}", change.rejected_by, change.rejection);
    }
    if !change.outcome.is_empty() {
        println!("  outcome: {}", change.outcome);
    }
    if !change.conflict.is_empty() {
        println!("  conflict: {}", change.conflict);
        for moved in &change.conflict_changes {
            let side = |value: &Option<pbjson_types::Value>| value.as_ref().map_or("-".to_owned(), compact);
            println!(
                "    {} {}: {} → {}",
                moved.kind,
                moved.path,
                side(&moved.before),
                side(&moved.after)
            );
        }
    }
    Ok(())
}
