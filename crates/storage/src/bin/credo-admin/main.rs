//! `credo-admin`: the operator's command line for credo-storage. It reads the service's own
//! configuration (`CREDO_CONFIG_FILE` and `CREDO_*`, see `docs/configuration.md`), connects
//! with [`Storage::connect_without_tasks`] (no relay, consumer or maintenance runner of its
//! own), acts once and exits. See `docs/admin.md`.
//!
//! Exit codes: 0 success; 1 the operation failed, readiness is not ready, or nothing matched;
//! 2 a usage or configuration error. Errors go to stderr; `--json` output to stdout.

#[cfg(feature = "kafka")]
mod kafka;

use clap::{Parser, Subcommand};
use credo_storage::pipeline::maintenance::{JobOutcome, JobReport};
use credo_storage::{
    Backend, ConfigError, Cursor, DeadLetter, EventId, Outbox, PageRequest, ReadyStatus, Storage,
    StorageConfig, StorageError, Timestamp,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

const EXAMPLES: &str = "\
Examples:
  credo-admin outbox status
  credo-admin --json dead-letters list --limit 20
  CREDO_CONFIG_FILE=/etc/credo/storage.toml credo-admin readiness

Configuration: the service's own, from CREDO_CONFIG_FILE and CREDO_* variables
(docs/configuration.md). credo-admin migrates only when told to (`migrations up`;
postgres.migrate is ignored) and starts no relay, consumer or maintenance runner of its
own (`audit rebuild` runs one consumer, in a group of its own, until it has caught up).
Exit codes: 0 success, 1 failed / not ready / nothing matched, 2 usage or configuration.";

/// Operator commands for credo-storage: the outbox, its dead letters, maintenance,
/// readiness, migrations, the audit log's rebuild and the Kafka dead-letter topic.
#[derive(Parser)]
#[command(name = "credo-admin", version, after_help = EXAMPLES)]
struct Cli {
    /// Print machine-readable JSON on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The audit outbox: what is pending, what was set aside.
    #[command(
        subcommand,
        after_help = "Example:\n  credo-admin outbox status --json"
    )]
    Outbox(OutboxCommand),
    /// Outbox dead letters: events the sink kept rejecting, set aside until re-queued.
    #[command(
        subcommand,
        after_help = "Example:\n  credo-admin dead-letters list\n  credo-admin dead-letters requeue 0193a5c4-6f1e-7d2a-9c1b-3e4f5a6b7c8d"
    )]
    DeadLetters(DeadLetterCommand),
    /// The maintenance jobs (purges of expired and published rows).
    #[command(subcommand, after_help = "Example:\n  credo-admin maintenance run")]
    Maintenance(MaintenanceCommand),
    /// Runs the readiness checks once and prints the report (exit 0 when ready, 1 when not).
    ///
    /// The checks of the backends in use, of the outbox backlog and of maintenance; not the
    /// `relay` and `audit-consumer` checks, which only a running service can answer (ask its
    /// `/health/ready`).
    #[command(after_help = "Example:\n  credo-admin readiness --json")]
    Readiness,
    /// Database migrations.
    #[command(subcommand, after_help = "Example:\n  credo-admin migrations status")]
    Migrations(MigrationsCommand),
    /// The materialized audit log.
    #[command(
        subcommand,
        after_help = "Example:\n  credo-admin audit rebuild --timeout-secs 1800"
    )]
    Audit(AuditCommand),
    /// The Kafka dead-letter topic (`kafka.dlq_topic`): messages the audit consumer could not
    /// materialize. Read without joining a consumer group or committing offsets.
    #[command(
        subcommand,
        after_help = "Example:\n  credo-admin kafka-dead-letters list\n  credo-admin kafka-dead-letters requeue 0:17\n  credo-admin kafka-dead-letters purge --before 0:18 --yes"
    )]
    KafkaDeadLetters(KafkaDeadLetterCommand),
}

#[derive(Subcommand)]
enum OutboxCommand {
    /// Pending events, the age of the oldest, and the dead-letter count.
    #[command(
        after_help = "Example:\n  credo-admin outbox status\n  credo-admin outbox status --json"
    )]
    Status,
}

#[derive(Subcommand)]
enum DeadLetterCommand {
    /// Lists dead letters, oldest first, one page at a time.
    #[command(
        after_help = "Example:\n  credo-admin dead-letters list --limit 20\n  credo-admin dead-letters list --after 2026-11-30T17:47:43.319041Z/0193a5c4-6f1e-7d2a-9c1b-3e4f5a6b7c8d"
    )]
    List {
        /// Dead letters per page (1 to 1000).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=1000))]
        limit: u16,
        /// Start after this cursor: the `next` a previous page printed.
        #[arg(long, value_parser = parse_cursor)]
        after: Option<Cursor>,
    },
    /// Shows one dead letter in full, payload included.
    #[command(
        after_help = "Example:\n  credo-admin dead-letters show 0193a5c4-6f1e-7d2a-9c1b-3e4f5a6b7c8d"
    )]
    Show {
        /// The event id (a UUID).
        #[arg(value_parser = parse_event_id)]
        event_id: EventId,
    },
    /// Makes dead letters pending again (failures cleared, original position kept); the
    /// service's relay then publishes them. Fix the cause first.
    #[command(
        after_help = "Example:\n  credo-admin dead-letters requeue 0193a5c4-6f1e-7d2a-9c1b-3e4f5a6b7c8d 0193a5c4-7a00-7d2a-9c1b-3e4f5a6b7c8d"
    )]
    Requeue {
        /// Event ids (UUIDs) of dead letters.
        #[arg(required = true, value_parser = parse_event_id)]
        event_ids: Vec<EventId>,
    },
    /// Deletes dead letters for good: those events will never be published. Read them first
    /// (`show`); needs `--yes`. Ids that are not dead letters are left alone.
    #[command(
        after_help = "Example:\n  credo-admin dead-letters purge --yes 0193a5c4-6f1e-7d2a-9c1b-3e4f5a6b7c8d"
    )]
    Purge {
        /// Event ids (UUIDs) of dead letters.
        #[arg(required = true, value_parser = parse_event_id)]
        event_ids: Vec<EventId>,
        /// Confirms the deletion (refused without it).
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
enum MaintenanceCommand {
    /// Runs every enabled maintenance job once now, each under its lease (a job another
    /// instance is running reports `busy`), and prints each job's report.
    #[command(after_help = "Example:\n  credo-admin maintenance run --json")]
    Run,
}

#[derive(Subcommand)]
enum MigrationsCommand {
    /// The embedded migrations and whether each is applied (PostgreSQL; the other backends
    /// have none).
    #[command(after_help = "Example:\n  credo-admin migrations status")]
    Status,
    /// Applies the pending migrations (creating `postgres.schema` if missing), under the
    /// migration lock services take at start-up, and prints the versions applied.
    #[command(
        after_help = "Example:\n  credo-admin migrations up\n  credo-admin --json migrations up"
    )]
    Up,
    /// Rolls the schema back to `--to` VERSION: reverts every applied migration above it,
    /// newest first, with its down migration. Data those migrations added is lost. Refused
    /// without `--yes` (it then says what it would revert). Stop the services first: a
    /// release expects its own schema.
    #[command(
        after_help = "Example:\n  credo-admin migrations down --to 4        # says what it would revert\n  credo-admin migrations down --to 4 --yes"
    )]
    Down {
        /// The version to keep: migrations above it are reverted (0 reverts them all).
        #[arg(long, value_parser = clap::value_parser!(i64).range(0..))]
        to: i64,
        /// Do it (without it, nothing is reverted and the exit code is 2).
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Rebuilds the audit log from the Kafka audit topic (`kafka.topic`), the DR procedure
    /// of docs/operations/disaster-recovery.md: runs one audit consumer in a new consumer
    /// group, from the earliest offset the topic still holds, into the configured audit
    /// log, until it has caught up on every partition; then stops it. Events already in the
    /// log are skipped (by event id), so it is safe to run on a log that is only partly lost.
    #[command(
        after_help = "Example:\n  credo-admin audit rebuild\n  credo-admin --json audit rebuild --group credo-audit-materializer.rebuild-2 --timeout-secs 1800"
    )]
    Rebuild {
        /// Consumer group of the rebuild (default `<kafka.group_id>.rebuild-<unix seconds>`).
        /// A group that committed offsets before resumes from them: use a new name to read
        /// the whole topic. Never the service's own `kafka.group_id`.
        #[arg(long)]
        group: Option<String>,
        /// Give up (exit 1) when not caught up after this many seconds.
        #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
        timeout_secs: u64,
    },
}

#[derive(Subcommand)]
enum KafkaDeadLetterCommand {
    /// Lists the dead-letter topic's messages, partition by partition, oldest first: position,
    /// key, why it was set aside (`dlq_reason`) and its event id (when it had one).
    #[command(after_help = "Example:\n  credo-admin kafka-dead-letters list --limit 20")]
    List {
        /// Messages to list at most.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        limit: u32,
    },
    /// Shows one message of the dead-letter topic: its headers and payload.
    #[command(after_help = "Example:\n  credo-admin kafka-dead-letters show 0:17")]
    Show {
        /// `<PARTITION>:<OFFSET>`, as `list` prints it.
        #[arg(value_parser = parse_position)]
        position: Position,
    },
    /// Publishes messages of the dead-letter topic to the audit topic again (key, payload and
    /// original headers, without the `dlq_*` ones; acks=all), for the service's consumer to
    /// materialize. Fix the cause first. Harmless twice: the consumer skips event ids the log
    /// holds. The dead-letter topic keeps its copy.
    #[command(after_help = "Example:\n  credo-admin kafka-dead-letters requeue 0:17 2:3")]
    Requeue {
        /// `<PARTITION>:<OFFSET>` of each message, as `list` prints it.
        #[arg(required = true, value_parser = parse_position)]
        positions: Vec<Position>,
    },
    /// Deletes messages of the dead-letter topic for good, with the broker's DeleteRecords.
    ///
    /// Kafka cannot delete one message: a partition is cut at an offset, and every message
    /// below it goes. `--before P:O` cuts partition P at offset O (the message at O stays);
    /// `--all` cuts every partition at its end as read first. Read, and requeue, what must be
    /// kept first; refused without `--yes`. Every cut is checked against the partition's
    /// offsets before any is sent. A broker without DeleteRecords (tansu) fails the request:
    /// let retention empty the topic instead (`retention.ms`; docs/admin.md).
    #[command(
        group(clap::ArgGroup::new("what").required(true).args(["before", "all"])),
        after_help = "Example:\n  credo-admin kafka-dead-letters purge --before 0:18 --yes      # 0:0 to 0:17 go\n  credo-admin --json kafka-dead-letters purge --before 0:18 2:4 --yes\n  credo-admin kafka-dead-letters purge --all --yes"
    )]
    Purge {
        /// `<PARTITION>:<OFFSET>`: delete every message of PARTITION below OFFSET (one per
        /// partition; OFFSET at most the partition's end).
        #[arg(
            long,
            value_name = "PARTITION:OFFSET",
            num_args = 1..,
            value_parser = parse_position
        )]
        before: Vec<Position>,
        /// Delete every message of every partition, up to the end read before deleting
        /// (messages written meanwhile stay).
        #[arg(long, conflicts_with = "before")]
        all: bool,
        /// Confirms the deletion (refused without it).
        #[arg(long)]
        yes: bool,
    },
}

/// A message's place in a topic: `<partition>:<offset>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Position {
    partition: i32,
    offset: i64,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.partition, self.offset)
    }
}

fn parse_position(s: &str) -> Result<Position, String> {
    let bad = || {
        format!(
            "{s:?} is not a position: pass <PARTITION>:<OFFSET> as `kafka-dead-letters list` \
             prints it, e.g. 0:17"
        )
    };
    let (p, o) = s.split_once(':').ok_or_else(bad)?;
    let (partition, offset) = (p.parse().map_err(|_| bad())?, o.parse().map_err(|_| bad())?);
    if partition < 0 || offset < 0 {
        return Err(bad());
    }
    Ok(Position { partition, offset })
}

/// Why a command did not succeed: what to print on stderr, and the exit code.
struct Failure {
    message: String,
    code: u8,
}

impl Failure {
    /// The operation failed (exit 1).
    fn failed(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: 1,
        }
    }

    /// A usage error (exit 2): a command this configuration or build cannot run, or one
    /// that needs confirming.
    fn usage(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: 2,
        }
    }

    /// A command of a cargo feature this build lacks (exit 2).
    #[allow(dead_code)] // unused when every feature is compiled in
    fn not_compiled(command: &str, feature: &str) -> Self {
        Self::usage(format!(
            "`{command}` needs the `{feature}` cargo feature, which this build of credo-admin \
             lacks (build it with `--features cli,{feature}`)"
        ))
    }

    /// A configuration error (exit 2): it names the setting and its variable.
    fn config(e: &ConfigError) -> Self {
        Self {
            message: format!("configuration: {e}"),
            code: 2,
        }
    }
}

/// What a command prints on success: JSON for `--json`, text otherwise; and whether it
/// counts as success (readiness not ready, nothing re-queued: exit 1).
struct Output {
    json: Value,
    text: String,
    ok: bool,
}

impl Output {
    fn ok(json: Value, text: String) -> Self {
        Self {
            json,
            text,
            ok: true,
        }
    }
}

// One thread is plenty for one command, and leaves the service's host its cores.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = run(&cli.command).await;
    match result {
        Ok(out) => {
            if cli.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&out.json).expect("JSON values serialize")
                );
            } else {
                print!("{}", out.text);
            }
            if out.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(f) => {
            eprintln!("credo-admin: error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

/// Reads the configuration, connects, runs `command`, and shuts the connections down
/// whatever the command's outcome.
async fn run(command: &Command) -> Result<Output, Failure> {
    let mut config = StorageConfig::from_env().map_err(|e| Failure::config(&e))?;
    // An inspection tool must not change the schema it inspects (and `migrations status`
    // would always say "applied").
    if let Some(pg) = config.postgres.as_mut() {
        pg.migrate = false;
    }
    // The dead-letter topic needs only the Kafka settings: no store is connected.
    if let Command::KafkaDeadLetters(c) = command {
        return kafka_dead_letters(&config, c).await;
    }
    let uses_outbox = matches!(command, Command::Outbox(_) | Command::DeadLetters(_));
    if uses_outbox && config.backends.audit == Backend::InMemory {
        eprintln!(
            "credo-admin: note: backends.audit is inmemory: the outbox lives inside each \
             process, so this shows credo-admin's own, empty one (set CREDO_BACKENDS_AUDIT, \
             CREDO_BACKENDS_USERS, CREDO_BACKENDS_CONSENTS and CREDO_POSTGRES_URL to reach a \
             shared outbox)"
        );
    }
    let storage = Storage::connect_without_tasks(&config)
        .await
        .map_err(|e| match e {
            StorageError::Config(c) => Failure::config(&c),
            other => Failure::failed(format!("connecting: {other}")),
        })?;
    let result = match command {
        Command::Outbox(OutboxCommand::Status) => outbox_status(&*storage.outbox).await,
        Command::DeadLetters(c) => dead_letters(&*storage.outbox, c).await,
        Command::Maintenance(MaintenanceCommand::Run) => {
            maintenance_run(&storage, config.maintenance.enabled()).await
        }
        Command::Readiness => readiness(&storage).await,
        Command::Migrations(MigrationsCommand::Status) => {
            migrations_status(&storage, &config).await
        }
        Command::Migrations(MigrationsCommand::Up) => migrations_up(&storage, &config).await,
        Command::Migrations(MigrationsCommand::Down { to, yes }) => {
            migrations_down(&storage, &config, *to, *yes).await
        }
        Command::Audit(AuditCommand::Rebuild {
            group,
            timeout_secs,
        }) => {
            audit_rebuild(
                &storage,
                &config,
                group.clone(),
                Duration::from_secs(*timeout_secs),
            )
            .await
        }
        Command::KafkaDeadLetters(_) => unreachable!("handled before connecting"),
    };
    // No background task runs; this closes the connection pools.
    storage.shutdown().await;
    result
}

/// A store error with what was being done, and where to look when the backend is down.
fn store_err(doing: &str) -> impl FnOnce(credo_storage::StoreError) -> Failure + '_ {
    move |e| {
        let hint = if matches!(e, credo_storage::StoreError::Unavailable(_)) {
            " (is the backend reachable at the configured URL? `credo-admin readiness` checks each)"
        } else {
            ""
        };
        Failure::failed(format!("{doing}: {e}{hint}"))
    }
}

async fn outbox_status(outbox: &dyn Outbox) -> Result<Output, Failure> {
    let depth = outbox
        .depth()
        .await
        .map_err(store_err("reading the outbox depth"))?;
    let oldest = outbox
        .oldest_pending_age()
        .await
        .map_err(store_err("reading the oldest pending event"))?;
    let dead = outbox
        .dead_letter_count()
        .await
        .map_err(store_err("counting dead letters"))?;
    let age = oldest.map(|d| d.as_secs_f64());
    let text = format!(
        "pending:            {depth}\noldest pending age: {}\ndead letters:       {dead}\n",
        age.map_or("-".into(), |s| format!("{s:.1} s"))
    );
    Ok(Output::ok(
        json!({"depth": depth, "oldest_pending_age_seconds": age, "dead_letters": dead}),
        text,
    ))
}

async fn dead_letters(outbox: &dyn Outbox, command: &DeadLetterCommand) -> Result<Output, Failure> {
    match command {
        DeadLetterCommand::List { limit, after } => {
            let page = outbox
                .dead_letters(PageRequest {
                    after: *after,
                    limit: usize::from(*limit),
                })
                .await
                .map_err(store_err("listing dead letters"))?;
            let next = page.next.map(format_cursor);
            let mut text = String::new();
            for d in &page.items {
                let m = &d.message;
                let _ = writeln!(
                    text,
                    "{}  {}  tenant {}  enqueued {}  failed {}  failures {}\n    reason: {}",
                    m.id,
                    m.event_type,
                    m.tenant_id,
                    d.enqueued_at,
                    d.failed_at,
                    d.failures,
                    d.reason
                );
            }
            if page.items.is_empty() {
                text.push_str("no dead letters\n");
            }
            if let Some(next) = &next {
                let _ = writeln!(text, "next page: --after {next}");
            }
            let items: Vec<Value> = page.items.iter().map(summary).collect();
            Ok(Output::ok(
                json!({"dead_letters": items, "next": next}),
                text,
            ))
        }
        DeadLetterCommand::Show { event_id } => {
            let found = all_dead_letters(outbox)
                .await?
                .into_iter()
                .find(|d| d.message.id == *event_id);
            let Some(d) = found else {
                return Err(Failure::failed(format!(
                    "no dead letter with event id {event_id} (it may be pending, published, or \
                     unknown; `credo-admin dead-letters list` shows the dead letters)"
                )));
            };
            let mut json = summary(&d);
            let m = &d.message;
            json["subject_user_id"] = json!(m.subject.map(|s| s.to_string()));
            json["schema_version"] = json!(m.schema_version);
            json["traceparent"] = json!(m.traceparent.as_ref().map(ToString::to_string));
            json["payload"] = json!(m.payload);
            // Shown pretty when it is JSON; a poison row may not be, and is shown as stored.
            let payload = serde_json::from_str::<Value>(&m.payload)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or_else(|| m.payload.clone());
            let text = format!(
                "event id:       {}\nevent type:     {}\ntenant:         {}\nsubject:        {}\n\
                 schema version: {}\nenqueued at:    {}\nfailed at:      {}\nfailures:       {}\n\
                 reason:         {}\ntraceparent:    {}\npayload:\n{payload}\n",
                m.id,
                m.event_type,
                m.tenant_id,
                m.subject.map_or("-".into(), |s| s.to_string()),
                m.schema_version,
                d.enqueued_at,
                d.failed_at,
                d.failures,
                d.reason,
                m.traceparent
                    .as_ref()
                    .map_or("-".into(), ToString::to_string),
            );
            Ok(Output::ok(json, text))
        }
        DeadLetterCommand::Requeue { event_ids } => {
            let (ids, missing) = dead_among(outbox, event_ids).await?;
            let requeued = if ids.is_empty() {
                0
            } else {
                outbox
                    .requeue(&ids)
                    .await
                    .map_err(store_err("re-queueing dead letters"))?
            };
            Ok(Output {
                json: json!({"requeued": requeued, "not_dead_letters": missing}),
                text: format!(
                    "re-queued {requeued} of {} event(s)\n",
                    ids.len() + missing.len()
                ),
                ok: requeued > 0,
            })
        }
        DeadLetterCommand::Purge { event_ids, yes } => {
            if !yes {
                return Err(Failure::usage(format!(
                    "this would delete {} dead letter(s) for good (their events are never \
                     published); pass --yes",
                    event_ids.iter().collect::<BTreeSet<_>>().len()
                )));
            }
            let (ids, missing) = dead_among(outbox, event_ids).await?;
            let purged = if ids.is_empty() {
                0
            } else {
                outbox
                    .purge_dead_letters(&ids)
                    .await
                    .map_err(store_err("deleting dead letters"))?
            };
            Ok(Output {
                json: json!({"purged": purged, "not_dead_letters": missing}),
                text: format!(
                    "deleted {purged} of {} dead letter(s)\n",
                    ids.len() + missing.len()
                ),
                ok: purged > 0,
            })
        }
    }
}

/// The distinct `event_ids` split into the outbox's dead letters and the others, which are
/// named on stderr (as text, for the JSON output) and left alone.
async fn dead_among(
    outbox: &dyn Outbox,
    event_ids: &[EventId],
) -> Result<(Vec<EventId>, Vec<String>), Failure> {
    let wanted: BTreeSet<EventId> = event_ids.iter().copied().collect();
    let dead: BTreeSet<EventId> = all_dead_letters(outbox)
        .await?
        .into_iter()
        .map(|d| d.message.id)
        .collect();
    let missing: Vec<String> = wanted.difference(&dead).map(ToString::to_string).collect();
    for id in &missing {
        eprintln!("credo-admin: {id} is not a dead letter; left alone");
    }
    Ok((wanted.intersection(&dead).copied().collect(), missing))
}

/// A dead letter's listing fields.
fn summary(d: &DeadLetter) -> Value {
    let m = &d.message;
    json!({
        "event_id": m.id.to_string(),
        "event_type": m.event_type,
        "tenant_id": m.tenant_id.to_string(),
        "enqueued_at": d.enqueued_at.to_rfc3339(),
        "failed_at": d.failed_at.to_rfc3339(),
        "failures": d.failures,
        "reason": d.reason,
    })
}

/// Every dead letter (the outbox has no lookup by id; dead letters are few, and kept only
/// until re-queued).
async fn all_dead_letters(outbox: &dyn Outbox) -> Result<Vec<DeadLetter>, Failure> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = outbox
            .dead_letters(PageRequest {
                after,
                limit: credo_storage::page::MAX_PAGE_SIZE,
            })
            .await
            .map_err(store_err("listing dead letters"))?;
        out.extend(page.items);
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(out),
        }
    }
}

/// `<enqueued_at>/<event id>`: the position a page ends at.
fn format_cursor(c: Cursor) -> String {
    format!("{}/{}", c.at.to_rfc3339(), c.id)
}

fn parse_cursor(s: &str) -> Result<Cursor, String> {
    let bad = || {
        format!(
            "{s:?} is not a cursor: pass the `next` a previous page printed \
             (<enqueued_at RFC 3339>/<event id>)"
        )
    };
    let (at, id) = s.rsplit_once('/').ok_or_else(bad)?;
    Ok(Cursor {
        at: Timestamp::parse_rfc3339(at).ok_or_else(bad)?,
        id: id.parse().map_err(|_| bad())?,
    })
}

fn parse_event_id(s: &str) -> Result<EventId, String> {
    s.parse::<uuid::Uuid>()
        .map(EventId::from_uuid)
        .map_err(|e| format!("{s:?} is not an event id (a UUID such as 0193a5c4-6f1e-7d2a-9c1b-3e4f5a6b7c8d): {e}"))
}

async fn maintenance_run(storage: &Storage, enabled: bool) -> Result<Output, Failure> {
    if !enabled {
        return Ok(Output::ok(
            json!({"enabled": false, "jobs": []}),
            "maintenance is off (maintenance.enabled = false): nothing ran\n".into(),
        ));
    }
    let reports = storage.run_maintenance().await;
    let mut text = String::new();
    let mut failed = Vec::new();
    let jobs: Vec<Value> = reports
        .iter()
        .map(|r| {
            let j = job_json(r);
            let _ = writeln!(
                text,
                "{:<18} {:<10} removed {:<8} {} ms{}",
                r.job,
                j["outcome"].as_str().unwrap_or("?"),
                j["removed"],
                j["took_ms"],
                j["error"]
                    .as_str()
                    .map_or(String::new(), |e| format!("  error: {e}"))
            );
            if r.outcome.is_err() {
                failed.push(r.job.clone());
            }
            j
        })
        .collect();
    if jobs.is_empty() {
        text.push_str("every maintenance job is switched off: nothing ran\n");
    }
    if !failed.is_empty() {
        eprintln!(
            "credo-admin: maintenance job(s) failed: {}",
            failed.join(", ")
        );
    }
    Ok(Output {
        json: json!({"enabled": true, "jobs": jobs}),
        text,
        ok: failed.is_empty(),
    })
}

/// One job's report: `outcome` is `done`, `busy`, `stopped`, `lease_lost` or `failed`.
fn job_json(r: &JobReport) -> Value {
    let (outcome, removed, batches, error) = match &r.outcome {
        Ok(JobOutcome::Done { removed, batches }) => ("done", *removed, Some(*batches), None),
        Ok(JobOutcome::Busy) => ("busy", 0, None, None),
        Ok(JobOutcome::Stopped { removed }) => ("stopped", *removed, None, None),
        Ok(JobOutcome::LeaseLost { removed }) => ("lease_lost", *removed, None, None),
        Ok(other) => ("other", 0, None, Some(format!("{other:?}"))),
        Err(e) => ("failed", 0, None, Some(e.to_string())),
    };
    json!({
        "job": r.job,
        "outcome": outcome,
        "removed": removed,
        "batches": batches,
        "took_ms": u64::try_from(r.took.as_millis()).unwrap_or(u64::MAX),
        "error": error,
    })
}

async fn readiness(storage: &Storage) -> Result<Output, Failure> {
    let report = storage.readiness().report().await;
    let ready = report.status == ReadyStatus::Ready;
    let mut text = format!("{}\n", if ready { "ready" } else { "not ready" });
    for (name, status) in &report.checks {
        let _ = write!(text, "  {name:<16} {status}");
        if let Some(why) = report.details.get(name) {
            let _ = write!(text, ": {why}");
        }
        text.push('\n');
    }
    Ok(Output {
        json: report.to_json(),
        text,
        ok: ready,
    })
}

#[cfg(feature = "postgres")]
async fn migrations_status(storage: &Storage, config: &StorageConfig) -> Result<Output, Failure> {
    match (storage.postgres(), &config.postgres) {
        (Some(pg), Some(settings)) => postgres_migrations(pg, &settings.pg_config()).await,
        _ => Ok(no_migrations()),
    }
}

#[cfg(not(feature = "postgres"))]
async fn migrations_status(_: &Storage, _: &StorageConfig) -> Result<Output, Failure> {
    Ok(no_migrations())
}

fn no_migrations() -> Output {
    Output::ok(
        json!({"backend": null, "migrations": [], "up_to_date": true,
               "note": "no backend in use has migrations (in-memory and Redis keep no schema)"}),
        "no backend in use has migrations (in-memory and Redis keep no schema)\n".into(),
    )
}

/// A row of the migrations table: description, success, checksum, applied at.
#[cfg(feature = "postgres")]
type AppliedRow = (String, bool, Vec<u8>, Timestamp);

/// The rows of the migrations table `table` by version (none when it does not exist yet).
#[cfg(feature = "postgres")]
async fn read_applied(
    pg: &credo_storage::postgres::PgStores,
    table: &str,
) -> Result<std::collections::BTreeMap<i64, AppliedRow>, Failure> {
    use sqlx::Row;
    let read =
        |e: sqlx::Error| Failure::failed(format!("reading the migrations table `{table}`: {e}"));
    // The name resolves through the connection's search_path, as sqlx's own statements do.
    let exists: bool = sqlx::query_scalar("SELECT to_regclass($1::text) IS NOT NULL")
        .bind(table)
        .fetch_one(pg.pool())
        .await
        .map_err(read)?;
    let mut applied = std::collections::BTreeMap::new();
    if exists {
        // The table name is a validated identifier ([a-z_][a-z0-9_]*); it cannot be bound.
        let sql = format!(
            "SELECT version, description, success, checksum, \
             (extract(epoch FROM installed_on) * 1000000)::bigint AS installed_us \
             FROM {table} ORDER BY version"
        );
        for row in sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(pg.pool())
            .await
            .map_err(read)?
        {
            applied.insert(
                row.get::<i64, _>("version"),
                (
                    row.get::<String, _>("description"),
                    row.get::<bool, _>("success"),
                    row.get::<Vec<u8>, _>("checksum"),
                    Timestamp::from_micros(row.get::<i64, _>("installed_us")),
                ),
            );
        }
    }
    Ok(applied)
}

/// The embedded migrations against the rows of the migrations table.
#[cfg(feature = "postgres")]
async fn postgres_migrations(
    pg: &credo_storage::postgres::PgStores,
    c: &credo_storage::postgres::PgConfig,
) -> Result<Output, Failure> {
    let table = c.migrations_table.clone();
    // version -> (description, success, checksum, applied at)
    let mut applied = read_applied(pg, &table).await?;
    let mut entries = Vec::new();
    let mut text = format!(
        "PostgreSQL, schema {}, table {table}\n",
        c.schema.as_deref().unwrap_or("(search_path)")
    );
    let mut pending = 0;
    for m in credo_storage::postgres::MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
    {
        let row = applied.remove(&m.version);
        let status = match &row {
            None => "pending",
            Some((_, false, _, _)) => "failed",
            Some((_, true, sum, _)) if **sum != *m.checksum => "modified",
            Some(_) => "applied",
        };
        if status != "applied" {
            pending += 1;
        }
        let at = row.as_ref().map(|r| r.3.to_rfc3339());
        let _ = writeln!(
            text,
            "  {:>4}  {:<28} {:<8} {}",
            m.version,
            m.description,
            status,
            at.as_deref().unwrap_or("")
        );
        entries.push(json!({
            "version": m.version,
            "description": m.description,
            "status": status,
            "applied_at": at,
        }));
    }
    // Rows this build does not embed: written by a newer release.
    let unknown: Vec<Value> = applied
        .iter()
        .map(|(version, (description, _, _, at))| {
            let _ = writeln!(
                text,
                "  {version:>4}  {description:<28} unknown (applied by a newer release?) {at}"
            );
            json!({"version": version, "description": description, "applied_at": at.to_rfc3339()})
        })
        .collect();
    let up_to_date = pending == 0;
    text.push_str(if up_to_date {
        "up to date\n"
    } else {
        "not up to date: `credo-admin migrations up`, or a service with postgres.migrate = true \
         at start-up, applies them\n"
    });
    Ok(Output::ok(
        json!({
            "backend": "postgres",
            "schema": c.schema,
            "table": table,
            "migrations": entries,
            "unknown": unknown,
            "pending": pending,
            "up_to_date": up_to_date,
        }),
        text,
    ))
}

/// The embedded up migrations: version and description, oldest first.
#[cfg(feature = "postgres")]
fn embedded() -> impl Iterator<Item = &'static sqlx::migrate::Migration> {
    credo_storage::postgres::MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
}

/// `version description` of each of `versions`, for messages.
#[cfg(feature = "postgres")]
fn describe(versions: &[i64]) -> String {
    versions
        .iter()
        .map(|v| {
            let name = embedded()
                .find(|m| m.version == *v)
                .map_or("?".into(), |m| m.description.to_string());
            format!("{v} ({name})")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `migrations up`/`down` only act on a PostgreSQL backend in use.
#[cfg(feature = "postgres")]
fn postgres_in_use<'a>(
    storage: &'a Storage,
    config: &'a StorageConfig,
    command: &str,
) -> Result<(&'a credo_storage::postgres::PgStores, String), Failure> {
    match (storage.postgres(), &config.postgres) {
        (Some(pg), Some(settings)) => Ok((pg, settings.pg_config().migrations_table)),
        _ => Err(Failure::usage(format!(
            "`{command}`: no backend in use has migrations (in-memory and Redis keep no \
             schema); set CREDO_BACKENDS_* = postgres and CREDO_POSTGRES_URL to migrate the \
             service's PostgreSQL"
        ))),
    }
}

/// Applies the pending migrations with the library's own [`PgStores::migrate`], and reports
/// the versions that were not applied before.
///
/// [`PgStores::migrate`]: credo_storage::postgres::PgStores::migrate
#[cfg(feature = "postgres")]
async fn migrations_up(storage: &Storage, config: &StorageConfig) -> Result<Output, Failure> {
    if storage.postgres().is_none() {
        return Ok(no_migrations());
    }
    let (pg, table) = postgres_in_use(storage, config, "migrations up")?;
    let before = read_applied(pg, &table).await?;
    pg.migrate()
        .await
        .map_err(store_err("applying the migrations"))?;
    let granted = config.postgres.as_ref().and_then(|p| p.app_role.clone());
    if let Some(role) = &granted {
        pg.grant_app_role(role)
            .await
            .map_err(store_err("granting postgres.app_role"))?;
    }
    let after = read_applied(pg, &table).await?;
    let applied: Vec<i64> = after
        .keys()
        .filter(|v| !before.contains_key(v))
        .copied()
        .collect();
    let latest = after.keys().next_back().copied();
    let mut text = if applied.is_empty() {
        "nothing to apply: up to date\n".to_string()
    } else {
        format!("applied {}\n", describe(&applied))
    };
    if let Some(role) = &granted {
        text.push_str(&format!("granted the application role {role}\n"));
    }
    Ok(Output::ok(
        json!({"backend": "postgres", "table": table, "applied": applied, "version": latest,
               "granted": granted}),
        text,
    ))
}

/// Reverts the applied migrations above `to`, newest first, with sqlx's migrator on the
/// configured migrations table (the one [`PgStores::migrate`] records into), under its lock.
///
/// [`PgStores::migrate`]: credo_storage::postgres::PgStores::migrate
#[cfg(feature = "postgres")]
async fn migrations_down(
    storage: &Storage,
    config: &StorageConfig,
    to: i64,
    yes: bool,
) -> Result<Output, Failure> {
    let (pg, table) = postgres_in_use(storage, config, "migrations down")?;
    if to > 0 && !embedded().any(|m| m.version == to) {
        let known: Vec<String> = embedded().map(|m| m.version.to_string()).collect();
        return Err(Failure::usage(format!(
            "--to {to}: this build has no migration {to} (it has {}; 0 reverts them all)",
            known.join(", ")
        )));
    }
    let before = read_applied(pg, &table).await?;
    let mut doomed: Vec<i64> = before.keys().filter(|v| **v > to).copied().collect();
    doomed.reverse();
    if doomed.is_empty() {
        return Ok(Output::ok(
            json!({"backend": "postgres", "table": table, "reverted": [], "version": before.keys().next_back()}),
            format!("nothing to roll back: no migration above {to} is applied\n"),
        ));
    }
    if !yes {
        return Err(Failure::usage(format!(
            "this would roll back {} (dropping what they added); pass --yes to do it",
            describe(&doomed)
        )));
    }
    // The library's migrations, recording into the configured table (as `PgStores::migrate`).
    let mut migrator = sqlx::migrate::Migrator::with_migrations(
        credo_storage::postgres::MIGRATOR.iter().cloned().collect(),
    );
    migrator.dangerous_set_table_name(table.clone());
    migrator.undo(pg.pool(), to).await.map_err(|e| {
        Failure::failed(format!(
            "rolling back to {to}: {e} (`credo-admin migrations status` shows where it stopped)"
        ))
    })?;
    let after = read_applied(pg, &table).await?;
    let reverted: Vec<i64> = doomed
        .iter()
        .filter(|v| !after.contains_key(v))
        .copied()
        .collect();
    Ok(Output::ok(
        json!({"backend": "postgres", "table": table, "reverted": reverted, "version": after.keys().next_back()}),
        format!("reverted {}\n", describe(&reverted)),
    ))
}

#[cfg(not(feature = "postgres"))]
async fn migrations_up(_: &Storage, _: &StorageConfig) -> Result<Output, Failure> {
    Err(Failure::not_compiled("migrations up", "postgres"))
}

#[cfg(not(feature = "postgres"))]
async fn migrations_down(
    _: &Storage,
    _: &StorageConfig,
    _: i64,
    _: bool,
) -> Result<Output, Failure> {
    Err(Failure::not_compiled("migrations down", "postgres"))
}

#[cfg(feature = "kafka")]
async fn audit_rebuild(
    storage: &Storage,
    config: &StorageConfig,
    group: Option<String>,
    timeout: Duration,
) -> Result<Output, Failure> {
    kafka::audit_rebuild(storage, config, group, timeout).await
}

#[cfg(not(feature = "kafka"))]
async fn audit_rebuild(
    _: &Storage,
    _: &StorageConfig,
    _: Option<String>,
    _: Duration,
) -> Result<Output, Failure> {
    Err(Failure::not_compiled("audit rebuild", "kafka"))
}

#[cfg(feature = "kafka")]
async fn kafka_dead_letters(
    config: &StorageConfig,
    command: &KafkaDeadLetterCommand,
) -> Result<Output, Failure> {
    kafka::dead_letters(config, command).await
}

#[cfg(not(feature = "kafka"))]
async fn kafka_dead_letters(
    _: &StorageConfig,
    _: &KafkaDeadLetterCommand,
) -> Result<Output, Failure> {
    Err(Failure::not_compiled("kafka-dead-letters", "kafka"))
}
