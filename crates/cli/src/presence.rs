//! `switchyard presence`: who is online (presence-service). `get` shows users with their
//! devices, `online` lists online users (with the API's filters), `stats` counts a channel's
//! members or a page's viewers, and `watch` prints every join, leave and update as it
//! happens, resuming where it left off after a dropped connection.

use clap::{Args, Subcommand};
use switchyard_api::presence::v1::{self as pb, presence_event::Kind, presence_service_client::PresenceServiceClient};
use tonic::{service::interceptor::InterceptedService, transport::Channel};

use crate::{
    grpc::{self, Bearer},
    output::{Output, print_json, print_table, time},
};

#[derive(Debug, Args)]
pub struct PresenceArgs {
    /// presence-service's gRPC address.
    #[arg(
        long,
        global = true,
        env = "SY_PRESENCE_SERVER",
        default_value = "http://127.0.0.1:9019"
    )]
    server: String,
    /// API key sent as `authorization: Bearer …` (viewer or above); defaults to
    /// ./data/admin-api-key, which `switchyard dev` writes.
    #[arg(long, global = true, env = "SY_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// How to print results.
    #[arg(long, global = true, value_enum, default_value_t = Output::Text)]
    output: Output,
    #[command(subcommand)]
    command: PresenceCommand,
}

#[derive(Debug, Subcommand)]
pub enum PresenceCommand {
    /// Users' presence: online, status, devices, page, last seen (up to 1,000 ids).
    Get(GetArgs),
    /// Online users, in id order, with optional filters.
    Online(OnlineArgs),
    /// A channel's connections and unique users, or (with --page) how many people view a page.
    Stats(StatsArgs),
    /// Every join, leave and update of the users and channels named, as they happen.
    Watch(WatchArgs),
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// User ids.
    #[arg(required = true)]
    users: Vec<String>,
}

#[derive(Debug, Args)]
pub struct OnlineArgs {
    /// Only users on a page starting with this.
    #[arg(long)]
    page_prefix: Option<String>,
    /// Only users with a device of this type (phone, tablet, desktop, web, tv, other).
    #[arg(long)]
    device_type: Option<String>,
    /// Only users in this country (ISO 3166-1 alpha-2).
    #[arg(long)]
    country: Option<String>,
    /// Only users in checkout.
    #[arg(long)]
    in_checkout: bool,
    /// At most this many users.
    #[arg(long, default_value_t = 100)]
    limit: usize,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// A channel, such as `product:sku-1`.
    #[arg(required_unless_present = "page", conflicts_with = "page")]
    channel: Option<String>,
    /// A page, such as `/product/sku-1`.
    #[arg(long)]
    page: Option<String>,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Users to watch.
    #[arg(long = "user")]
    users: Vec<String>,
    /// Channels to watch.
    #[arg(long = "channel")]
    channels: Vec<String>,
}

type Client = PresenceServiceClient<InterceptedService<Channel, Bearer>>;

pub async fn run(args: PresenceArgs) -> anyhow::Result<()> {
    let bearer = Bearer::new(Some(&grpc::required_key(args.api_key.as_deref())?))?;
    let mut client = PresenceServiceClient::with_interceptor(grpc::channel(&args.server)?, bearer);
    match args.command {
        PresenceCommand::Get(get_args) => get(&mut client, get_args, args.output).await,
        PresenceCommand::Online(online_args) => online(&mut client, online_args, args.output).await,
        PresenceCommand::Stats(stats_args) => stats(&mut client, stats_args, args.output).await,
        PresenceCommand::Watch(watch_args) => watch(&mut client, watch_args, args.output).await,
    }
}

fn failure(status: &tonic::Status) -> anyhow::Error {
    grpc::failure(status, "is presence-service running at --server / SY_PRESENCE_SERVER?")
}

fn row(presence: &pb::Presence) -> Vec<String> {
    let devices: Vec<String> = presence
        .connections
        .iter()
        .map(|connection| {
            connection
                .device
                .as_ref()
                .map(|device| device.r#type.clone())
                .unwrap_or_default()
        })
        .map(|kind| if kind.is_empty() { "?".to_owned() } else { kind })
        .collect();
    vec![
        presence.user_id.clone(),
        presence.status.clone(),
        devices.join(","),
        presence.current_page.clone(),
        time(presence.last_seen_time.as_ref()),
        time(presence.last_active_time.as_ref()),
    ]
}

const HEADER: [&str; 6] = ["USER", "STATUS", "DEVICES", "PAGE", "LAST SEEN", "LAST ACTIVE"];

async fn get(client: &mut Client, args: GetArgs, output: Output) -> anyhow::Result<()> {
    let presences = client
        .batch_get_presence(pb::BatchGetPresenceRequest {
            user_ids: args.users,
            // The table lists each user's devices.
            view: pb::PresenceView::Full.into(),
        })
        .await
        .map_err(|status| failure(&status))?
        .into_inner()
        .presences;
    if output == Output::Json {
        return print_json(&presences);
    }
    print_table(&HEADER, &presences.iter().map(row).collect::<Vec<_>>());
    Ok(())
}

async fn online(client: &mut Client, args: OnlineArgs, output: Output) -> anyhow::Result<()> {
    let mut users = Vec::new();
    let mut page_token = String::new();
    let mut count = 0;
    while users.len() < args.limit {
        let page = client
            .list_online_users(pb::ListOnlineUsersRequest {
                page_size: (args.limit - users.len()).min(1000) as i32,
                page_token,
                page_prefix: args.page_prefix.clone().unwrap_or_default(),
                device_type: args.device_type.clone().unwrap_or_default(),
                country: args.country.clone().unwrap_or_default(),
                in_checkout: args.in_checkout,
                viewing_product: String::new(),
                // The table lists each user's devices.
                view: pb::PresenceView::Full.into(),
            })
            .await
            .map_err(|status| failure(&status))?
            .into_inner();
        count = page.count;
        users.extend(page.users);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    if output == Output::Json {
        return print_json(&users);
    }
    print_table(&HEADER, &users.iter().map(row).collect::<Vec<_>>());
    println!("{count} online in all");
    Ok(())
}

async fn stats(client: &mut Client, args: StatsArgs, output: Output) -> anyhow::Result<()> {
    if let Some(page) = args.page {
        let viewers = client
            .get_page_viewers(pb::GetPageViewersRequest { page })
            .await
            .map_err(|status| failure(&status))?
            .into_inner();
        if output == Output::Json {
            return print_json(&viewers);
        }
        println!("{} viewing {}", viewers.viewers, viewers.page);
        return Ok(());
    }
    let channel = args.channel.unwrap_or_default();
    let stats = client
        .get_channel_presence_stats(pb::GetChannelPresenceStatsRequest { channel })
        .await
        .map_err(|status| failure(&status))?
        .into_inner();
    if output == Output::Json {
        return print_json(&stats);
    }
    println!(
        "{}: {} users, {} connections",
        stats.channel, stats.users, stats.connections
    );
    Ok(())
}

/// Streams until interrupted; after a dropped connection it resumes from the last cursor
/// (the service answers with a fresh snapshot when it cannot).
async fn watch(client: &mut Client, args: WatchArgs, output: Output) -> anyhow::Result<()> {
    if args.users.is_empty() && args.channels.is_empty() {
        anyhow::bail!("name at least one --user or --channel to watch");
    }
    let mut cursor = String::new();
    loop {
        let request = pb::WatchPresenceRequest {
            user_ids: args.users.clone(),
            channels: args.channels.clone(),
            resume_cursor: cursor.clone(),
        };
        let mut stream = client
            .watch_presence(request)
            .await
            .map_err(|status| failure(&status))?
            .into_inner();
        loop {
            match stream.message().await {
                Ok(Some(event)) => {
                    cursor.clone_from(&event.cursor);
                    print_event(&event, output)?;
                }
                Ok(None) => break,
                Err(status) if status.code() == tonic::Code::Unavailable => {
                    eprintln!("presence-service went away ({}); resuming", status.message());
                    break;
                }
                Err(status) => return Err(failure(&status)),
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

fn print_event(event: &pb::PresenceEvent, output: Output) -> anyhow::Result<()> {
    if output == Output::Json {
        return print_json(event);
    }
    match &event.kind {
        Some(Kind::Snapshot(snapshot)) => {
            for presence in &snapshot.users {
                println!("now     {:<20} {}", presence.user_id, presence.status);
            }
            for channel in &snapshot.channels {
                let members: Vec<&str> = channel.members.iter().map(|member| member.user_id.as_str()).collect();
                println!("now     {:<20} {}", channel.channel, members.join(" "));
            }
        }
        Some(Kind::Diff(diff)) => {
            let presence = diff.presence.clone().unwrap_or_default();
            let place = if diff.channel.is_empty() {
                String::new()
            } else {
                format!(" in {}", diff.channel)
            };
            println!(
                "{:<7} {:<20} {} {}{place}",
                diff.r#type, diff.user_id, presence.status, presence.current_page
            );
        }
        None => {}
    }
    Ok(())
}
