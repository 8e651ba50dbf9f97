//! Every `credo_*` metric an alert rule of `deploy/prometheus/` or a panel of a Grafana
//! dashboard of `deploy/grafana/` names is exported by the example service (its `/metrics`)
//! after a short scenario on PostgreSQL + Redis + Kafka: a rule over a metric nobody exports
//! would never fire, a panel over one would stay empty.
//!
//! Without servers: the dashboards parse, have unique uids, every panel has a title and a
//! query, and every metric the rules and dashboards name is a `pub const` of
//! `crates/ports/src/telemetry.rs`, so a misspelt name fails anywhere.

#[path = "../examples/service/http.rs"]
mod http;
mod support;

use credo_storage::{
    AuditCategory, AuditEvent, AuditQuery, Clock, NewUser, RateLimitPolicy, Storage, StorageConfig,
    SystemClock, TenantId,
};
use credo_testkit::unique_name as unique;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where each metric family is named: name → the files naming it (relative to the root).
type Uses = BTreeMap<String, BTreeSet<String>>;

/// A path relative to the repository root, for messages.
fn rel(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

fn note(uses: &mut Uses, expr: &str, file: &Path) {
    let file = rel(file);
    for name in metric_names(expr) {
        uses.entry(family(&name).to_string())
            .or_default()
            .insert(file.clone());
    }
}

fn merge(mut a: Uses, b: Uses) -> Uses {
    for (name, files) in b {
        a.entry(name).or_default().extend(files);
    }
    a
}

fn describe(uses: &Uses, names: &[&String]) -> Vec<String> {
    names
        .iter()
        .map(|n| {
            let files: Vec<_> = uses[*n].iter().map(String::as_str).collect();
            format!("{n} (in {})", files.join(", "))
        })
        .collect()
}

/// The `credo_*` metric families in the `expr` of every rule of the rule files that
/// `deploy/prometheus/prometheus.yml` loads, which must be every other `*.yml` there.
fn names_in_rules() -> Uses {
    let dir = root().join("deploy/prometheus");
    let config: serde_norway::Value =
        serde_norway::from_str(&std::fs::read_to_string(dir.join("prometheus.yml")).unwrap())
            .unwrap();
    let loaded: BTreeSet<String> = config["rule_files"]
        .as_sequence()
        .expect("prometheus.yml: rule_files")
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    let present: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .filter(|f| f != "prometheus.yml")
        .collect();
    // A rule file the compose Prometheus does not load would be checked here but never run.
    assert_eq!(
        loaded,
        present,
        "prometheus.yml's rule_files must be the rule files of {}",
        dir.display()
    );
    let mut uses = Uses::new();
    for file in &loaded {
        let path = dir.join(file);
        let doc: serde_norway::Value =
            serde_norway::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for group in doc["groups"].as_sequence().unwrap() {
            for rule in group["rules"].as_sequence().unwrap() {
                note(&mut uses, rule["expr"].as_str().unwrap(), &path);
            }
        }
    }
    uses
}

/// Every `deploy/grafana/*.json` dashboard, with its path.
fn dashboards() -> Vec<(std::path::PathBuf, serde_json::Value)> {
    let dir = root().join("deploy/grafana");
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let doc =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, doc)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!out.is_empty(), "no dashboard in {}", dir.display());
    out
}

/// Every panel of a dashboard, rows included, and the panels a collapsed row holds.
fn panels(dashboard: &serde_json::Value) -> Vec<&serde_json::Value> {
    fn walk<'a>(list: &'a serde_json::Value, out: &mut Vec<&'a serde_json::Value>) {
        for p in list.as_array().into_iter().flatten() {
            out.push(p);
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// The PromQL of a panel's targets.
fn exprs(panel: &serde_json::Value) -> Vec<&str> {
    panel["targets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["expr"].as_str())
        .collect()
}

/// The `credo_*` metric families in the queries of every panel of every dashboard, and of
/// their template variables (an `instance` list, say).
fn names_in_dashboards() -> Uses {
    let mut uses = Uses::new();
    for (path, d) in dashboards() {
        for panel in panels(&d) {
            for expr in exprs(panel) {
                note(&mut uses, expr, &path);
            }
        }
        for var in d["templating"]["list"].as_array().into_iter().flatten() {
            // A query variable's query is a string, or an object holding it (Grafana 10+).
            let q = &var["query"];
            if let Some(q) = q.as_str().or_else(|| q["query"].as_str()) {
                note(&mut uses, q, &path);
            }
        }
    }
    uses
}

/// The metric names crates/ports/src/telemetry.rs declares (`pub const X: &str = "credo_…"`),
/// read as text so that this check needs no build of the names themselves.
fn telemetry_names() -> BTreeSet<String> {
    let text = std::fs::read_to_string(root().join("crates/ports/src/telemetry.rs")).unwrap();
    text.split("pub const ")
        .skip(1)
        .filter_map(|decl| {
            let decl = &decl[..decl.find(';')?];
            let (head, value) = decl.split_once('=')?;
            if !head.contains("&str") {
                return None;
            }
            value.split('"').nth(1)
        })
        .filter(|n| n.starts_with("credo_"))
        .map(str::to_string)
        .collect()
}

/// `credo_*` identifiers of a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("credo_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

/// The metric family of a series name: a histogram's `_bucket`, `_sum` and `_count` series
/// fold into it.
fn family(name: &str) -> &str {
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|s| name.strip_suffix(s))
        .unwrap_or(name)
}

/// Metric family names in a Prometheus text exposition.
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| family(l.split(['{', ' ']).next().unwrap_or("")).to_string())
        .collect()
}

/// Set by `Storage::shutdown`, so read after it.
const AT_SHUTDOWN: &[&str] = &["credo_storage_shutdown_seconds"];

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_a_rule_or_a_dashboard_names_is_exported_after_a_scenario() {
    let rules = names_in_rules();
    assert!(rules.len() >= 10, "{rules:?}");
    let wanted = merge(rules, names_in_dashboards());
    let Some((pg, redis, kafka)) = support::servers() else {
        return;
    };
    let schema = unique("credo_alerts");
    let topic = unique("credo.alerts");
    let config = StorageConfig::from_toml_str(&format!(
        "[backends]\nusers = \"postgres\"\nconsents = \"postgres\"\naudit = \"postgres\"\n\
         sessions = \"redis\"\nrate_limits = \"redis\"\naudit_sink = \"kafka\"\n\
         [relay]\nidle_poll_ms = 10\n[readiness]\nreport_every_ms = 100\n{}{}{}",
        support::postgres(&pg, &schema),
        support::redis(&redis, &unique("credo_alerts")),
        support::kafka(&kafka, &topic, 1),
    ))
    .unwrap();
    let metrics = http::exporter().install_recorder().unwrap();
    let storage = Storage::connect(&config).await.unwrap();
    let app = Arc::new(http::App {
        readiness: storage.readiness(),
        started: Instant::now(),
        metrics: Some(metrics),
        clock: Arc::new(SystemClock),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, http::router(app)).await.unwrap();
    });

    // The scenario: a user (and a refused one), a session and its token revoked and checked,
    // rate-limit checks past the limit, an audit event through Kafka into the log.
    let tenant = TenantId::new();
    let user = storage
        .users
        .create(NewUser::new(tenant, "ada@example.com", "Ada", "L"))
        .await
        .unwrap();
    let refused = storage
        .users
        .create(NewUser::new(tenant, "not an email", "Ada", "L"))
        .await;
    assert!(refused.is_err());
    let soon = SystemClock.now().saturating_add(Duration::from_secs(60));
    storage
        .sessions
        .revoke_token(tenant, "jti-1", soon)
        .await
        .unwrap();
    assert!(
        storage
            .sessions
            .is_token_revoked(tenant, "jti-1")
            .await
            .unwrap()
    );
    let policy = RateLimitPolicy::per(1, Duration::from_secs(60));
    for _ in 0..2 {
        storage
            .rate_limits
            .check(tenant, "login:ada", policy, 1)
            .await
            .unwrap();
    }
    let mut e = AuditEvent::new(
        tenant,
        SystemClock.now(),
        AuditCategory::Security,
        "auth.login_failed",
    );
    e.subject_user_id = Some(user.id);
    storage.audit.record(e).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    while storage
        .audit_log
        .count(tenant, AuditQuery::default())
        .await
        .unwrap()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "events not materialized through Kafka"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for r in storage.run_maintenance().await {
        assert!(r.outcome.is_ok(), "{}: {:?}", r.job, r.outcome);
    }

    // Sampled gauges appear within their interval: readiness and pools every report, the
    // relay's every 5 s, the consumer's lag every 15 s but only when a message wakes the
    // consumer. Keep events flowing and scrape until all but the later ones are there.
    let later = |n: &String| AT_SHUTDOWN.contains(&n.as_str());
    let deadline = Instant::now() + Duration::from_secs(40);
    let text = loop {
        let text = get(addr, "/metrics").await;
        let have = exported(&text);
        if wanted.keys().all(|n| have.contains(n) || later(n)) || Instant::now() > deadline {
            break text;
        }
        let e = AuditEvent::new(
            tenant,
            SystemClock.now(),
            AuditCategory::Security,
            "auth.login_failed",
        );
        storage.audit.record(e).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // Histograms are Prometheus histograms (buckets), not summaries.
    assert!(
        text.contains("credo_store_operation_seconds_bucket{"),
        "{text}"
    );
    // Rate-limit checks carry the key's class, never the key.
    assert!(text.contains(r#"class="login""#), "{text}");
    assert!(
        !text.contains("ada@example.com"),
        "a raw value in a label: {text}"
    );
    storage.shutdown().await;
    let mut have = exported(&text);
    have.extend(exported(&get(addr, "/metrics").await));
    let missing: Vec<_> = wanted.keys().filter(|n| !have.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "named by an alert rule or a dashboard but not exported: {:?}\nexported: {have:?}",
        describe(&wanted, &missing)
    );
    support::drop_schemas(&pg, &[&schema]).await;
}

#[test]
fn metric_names_are_read_from_promql() {
    assert_eq!(
        metric_names(r#"sum by (job) (increase(credo_maintenance_failures_total[30m])) >= 3"#),
        ["credo_maintenance_failures_total"]
    );
    assert_eq!(
        metric_names(
            r#"credo_pool_connections{state="in_use"} / ignoring(state) credo_pool_connections{state="max"}"#
        ),
        ["credo_pool_connections", "credo_pool_connections"]
    );
    assert_eq!(
        metric_names(
            r#"label_replace(rate(credo_x_total{job="$1"}[$__rate_interval]), "a", "$1", "job", "(.*)")"#
        ),
        ["credo_x_total"]
    );
    assert_eq!(family("credo_a_seconds_bucket"), "credo_a_seconds");
    assert_eq!(family("credo_b_total"), "credo_b_total");
    let text = "# TYPE credo_a_seconds histogram\ncredo_a_seconds_bucket{le=\"1\"} 1\ncredo_a_seconds_sum 1\ncredo_b_total 0\n";
    assert_eq!(
        exported(text).into_iter().collect::<Vec<_>>(),
        ["credo_a_seconds", "credo_b_total"]
    );
}

#[test]
fn dashboards_are_well_formed_and_name_only_telemetry_metrics() {
    let mut uids = BTreeMap::new();
    for (path, d) in dashboards() {
        let file = rel(&path);
        // Grafana keys dashboards by uid (at most 40 characters): a copy must not replace one.
        let uid = d["uid"]
            .as_str()
            .filter(|u| !u.is_empty() && u.len() <= 40)
            .unwrap_or_else(|| panic!("{file}: uid of 1 to 40 characters"));
        if let Some(other) = uids.insert(uid.to_string(), file.clone()) {
            panic!("{file} and {other} share the uid {uid}");
        }
        assert!(
            d["title"].as_str().is_some_and(|t| !t.trim().is_empty()),
            "{file}: no title"
        );
        let all = panels(&d);
        let mut ids = BTreeSet::new();
        for p in &all {
            let id = p["id"]
                .as_u64()
                .unwrap_or_else(|| panic!("{file}: a panel without id"));
            assert!(ids.insert(id), "{file}: panel id {id} used twice");
        }
        let shown: Vec<_> = all.iter().filter(|p| p["type"] != "row").collect();
        assert!(!shown.is_empty(), "{file}: no panel");
        for p in shown {
            let title = p["title"].as_str().unwrap_or_default();
            assert!(
                !title.trim().is_empty(),
                "{file}: a panel without title: {p}"
            );
            let exprs = exprs(p);
            assert!(
                !exprs.is_empty() && exprs.iter().all(|e| !e.trim().is_empty()),
                "{file}: panel {title:?} has no query"
            );
        }
    }

    let dashboard = names_in_dashboards();
    assert!(dashboard.len() >= 20, "{dashboard:?}");
    let uses = merge(names_in_rules(), dashboard);
    let known = telemetry_names();
    assert!(known.len() >= 30, "telemetry.rs read wrongly: {known:?}");
    let unknown: Vec<_> = uses.keys().filter(|n| !known.contains(*n)).collect();
    assert!(
        unknown.is_empty(),
        "not a metric of crates/ports/src/telemetry.rs: {:?}",
        describe(&uses, &unknown)
    );
    for name in AT_SHUTDOWN {
        assert!(known.contains(*name), "{name}");
    }
}
