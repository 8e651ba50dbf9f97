//! docker-compose.yml cannot run here (no Docker engine), so it is checked statically: every
//! backend the facade wires has a service with a health check, the consoles are where the
//! seed puts them, and deploy/credo-storage.env is a valid facade configuration pointing at
//! those services with their credentials. Prometheus mounts deploy/prometheus/prometheus.yml,
//! which loads the alert rules and scrapes the example service's port on the host; Grafana is
//! provisioned with that Prometheus and the dashboards of deploy/grafana, for anonymous
//! viewers only.

use credo_storage::{AuditSink, Backend, StorageConfig};
use serde_norway::Value;

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn compose() -> Value {
    let text = std::fs::read_to_string(root().join("docker-compose.yml")).unwrap();
    serde_norway::from_str(&text).unwrap()
}

/// The passwords a developer chooses before `docker compose up` (the stack has none of its
/// own); the tests stand in these.
const CHOSEN: [(&str, &str); 4] = [
    ("CREDO_DEV_POSTGRES_PASSWORD", "pg-Secret_1"),
    ("CREDO_DEV_REDIS_PASSWORD", "redis-Secret_2"),
    ("CREDO_DEV_PGADMIN_PASSWORD", "admin-Secret_3"),
    ("CREDO_DEV_REDIS_APP_PASSWORD", "redis-app-Secret_4"),
];

/// The arguments of a service's `command`, interpolated.
fn command(service: &Value) -> Vec<String> {
    service["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| interpolate(v.as_str().expect("a string argument")))
        .collect()
}

/// The `--user` rule of the dev Redis: the user name and its rules.
fn redis_user(c: &Value) -> (String, Vec<String>) {
    let args = command(&c["services"]["redis"]);
    let mut rule = args
        .iter()
        .skip_while(|a| *a != "--user")
        .skip(1)
        .take_while(|a| !a.starts_with("--"))
        .cloned();
    let user = rule.next().expect("redis --user NAME RULES...");
    (user, rule.collect())
}

/// `text` with `${NAME}` and `${NAME:?message}` replaced as compose and the shell do, from
/// [`CHOSEN`]; panics on a variable not there.
fn interpolate(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find('}').expect("closing brace") + start;
        let name = rest[start + 2..end].split(":?").next().unwrap();
        let value = CHOSEN
            .iter()
            .find(|(k, _)| *k == name)
            .unwrap_or_else(|| panic!("{name}: not a chosen password"))
            .1;
        out.push_str(value);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

fn env_file() -> Vec<(String, String)> {
    std::fs::read_to_string(root().join("deploy/credo-storage.env"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=value");
            (k.to_string(), interpolate(v))
        })
        .collect()
}

/// The host port publishing `container`, from `HOST:CONTAINER` or `IP:HOST:CONTAINER`.
fn published_port(service: &Value, container: u16) -> u16 {
    published(service, container).1
}

/// The host address (`None`: every interface) and port publishing `container`.
fn published(service: &Value, container: u16) -> (Option<String>, u16) {
    service["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|p| p.as_str())
        .find_map(|p| {
            let (outer, inner) = p.rsplit_once(':')?;
            (inner.parse::<u16>().ok()? == container).then(|| match outer.rsplit_once(':') {
                Some((ip, host)) => (Some(ip.to_string()), host.parse().unwrap()),
                None => (None, outer.parse().unwrap()),
            })
        })
        .unwrap_or_else(|| panic!("port {container} not published"))
}

/// Where a path of the service's container is on the host, through its bind mounts
/// (`./HOST:CONTAINER[:ro]`), and whether that mount is read-only.
fn on_host(service: &Value, container_path: &str) -> Option<(std::path::PathBuf, bool)> {
    let target = std::path::Path::new(container_path);
    service["volumes"]
        .as_sequence()?
        .iter()
        .filter_map(|v| v.as_str())
        .find_map(|v| {
            let mut parts = v.split(':');
            let (host, inner) = (parts.next()?, parts.next()?);
            let read_only = parts.next() == Some("ro");
            let rest = target.strip_prefix(inner).ok()?;
            host.starts_with("./")
                .then(|| (root().join(host).join(rest), read_only))
        })
}

fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

fn yaml(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The port the example service listens on by default: its `CREDO_HTTP_ADDR` fallback, read
/// from its source so that the scrape target follows it.
fn example_service_port() -> u16 {
    let main = root().join("crates/storage/examples/service/main.rs");
    let src = std::fs::read_to_string(&main).unwrap();
    let at = src
        .find("\"CREDO_HTTP_ADDR\"")
        .expect("the example reads CREDO_HTTP_ADDR");
    // The string literals after the variable's name: the first address is its default.
    src[at..]
        .split('"')
        .skip(3)
        .step_by(2)
        .find_map(|lit| lit.parse::<std::net::SocketAddr>().ok())
        .unwrap_or_else(|| {
            panic!(
                "no default address after CREDO_HTTP_ADDR in {}",
                main.display()
            )
        })
        .port()
}

#[test]
fn every_service_has_an_image_and_a_health_check() {
    let c = compose();
    let services = c["services"].as_mapping().unwrap();
    for name in [
        "postgres",
        "pgadmin",
        "redis",
        "redpanda",
        "redpanda-console",
        "prometheus",
        "grafana",
    ] {
        let s = &c["services"][name];
        assert!(s["image"].as_str().is_some(), "{name}: no image");
        let test = s["healthcheck"]["test"].as_sequence();
        assert!(
            test.is_some_and(|t| t.len() >= 2),
            "{name}: no health check command"
        );
    }
    assert_eq!(services.len(), 7, "unexpected services: {services:?}");
    assert_eq!(published_port(&c["services"]["pgadmin"], 80), 5050);
    assert_eq!(
        published_port(&c["services"]["redpanda-console"], 8080),
        8085
    );
    // Neither has authentication worth the name: reachable from this machine only.
    for (name, port) in [("prometheus", 9090), ("grafana", 3000)] {
        let s = &c["services"][name];
        assert_eq!(
            published(s, port),
            (Some("127.0.0.1".to_string()), port),
            "{name}"
        );
        let image = s["image"].as_str().unwrap();
        let tag = image.rsplit_once(':').map(|(_, t)| t);
        assert!(
            tag.is_some_and(|t| t != "latest" && t.contains('.')),
            "{name}: pin a version, not {image}"
        );
    }
}

/// Issue 18: nothing of the stack is reachable from another machine, and no password is
/// written in it: each is a variable compose requires (`${NAME:?...}`), with no default.
#[test]
fn the_stack_listens_on_loopback_only_and_has_no_password_of_its_own() {
    let c = compose();
    for (name, service) in c["services"].as_mapping().unwrap() {
        let name = name.as_str().unwrap();
        for port in service["ports"].as_sequence().into_iter().flatten() {
            let port = port.as_str().unwrap();
            assert!(
                port.starts_with("127.0.0.1:"),
                "{name}: {port} is published on every interface"
            );
        }
    }
    let secrets = [
        &c["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"],
        &c["services"]["pgadmin"]["environment"]["PGADMIN_DEFAULT_PASSWORD"],
        &c["services"]["redis"]["environment"]["REDISCLI_AUTH"],
    ];
    let requirepass = c["services"]["redis"]["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .skip_while(|a| *a != "--requirepass")
        .nth(1)
        .map(str::to_string);
    let mut values: Vec<String> = secrets
        .iter()
        .map(|v| v.as_str().expect("a password setting").to_string())
        .collect();
    values.extend(requirepass);
    let app = c["services"]["redis"]["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .find_map(|a| a.strip_prefix('>'))
        .map(str::to_string);
    values.extend(app);
    assert_eq!(
        values.len(),
        5,
        "redis has --requirepass and a --user with a password"
    );
    for v in &values {
        assert!(
            v.starts_with("${CREDO_DEV_") && v.contains(":?") && v.ends_with('}'),
            "a password with a literal or default value: {v}"
        );
    }
    // Each service its own, and the Redis admin's not the service's: one leaked password
    // opens one thing.
    let names: std::collections::BTreeSet<_> = [&values[0], &values[1], &values[3], &values[4]]
        .iter()
        .map(|v| v.split(":?").next().unwrap())
        .collect();
    assert_eq!(names.len(), 4, "{values:?}");
}

#[test]
fn the_env_file_is_a_facade_configuration_pointing_at_the_stack() {
    let c = compose();
    let config = StorageConfig::from_vars(env_file()).unwrap();
    let b = &config.backends;
    assert_eq!(
        (
            b.users,
            b.consents,
            b.audit,
            b.sessions,
            b.rate_limits,
            b.audit_sink
        ),
        (
            Backend::Postgres,
            Backend::Postgres,
            Backend::Postgres,
            Backend::Redis,
            Backend::Redis,
            AuditSink::Kafka
        )
    );
    let pg = &c["services"]["postgres"];
    let env = &pg["environment"];
    let expected = format!(
        "postgres://{}:{}@localhost:{}/{}?sslmode=disable",
        env["POSTGRES_USER"].as_str().unwrap(),
        interpolate(env["POSTGRES_PASSWORD"].as_str().unwrap()),
        published_port(pg, 5432),
        env["POSTGRES_DB"].as_str().unwrap(),
    );
    assert_eq!(
        config.postgres.as_ref().unwrap().url.expose_secret(),
        expected
    );
    // The service connects as the dev Redis's ACL user, not as `default`.
    let redis = &c["services"]["redis"];
    let (user, rules) = redis_user(&c);
    let password = rules
        .iter()
        .find_map(|r| r.strip_prefix('>'))
        .expect("the user's password");
    assert_eq!(
        config.redis.as_ref().unwrap().url.expose_secret(),
        format!(
            "redis://{user}:{password}@localhost:{}",
            published_port(redis, 6379)
        )
    );
    let kafka = config.kafka.as_ref().unwrap();
    assert_eq!(
        kafka.brokers,
        format!(
            "localhost:{}",
            published_port(&c["services"]["redpanda"], 9092)
        )
    );
    let command: Vec<&str> = c["services"]["redpanda"]["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        command
            .iter()
            .any(|a| a.contains(&format!("EXTERNAL://{}", kafka.brokers))),
        "redpanda must advertise {} to the host: {command:?}",
        kafka.brokers
    );
    // A single broker cannot hold replication 3, nor 2 in-sync replicas.
    assert_eq!(kafka.replication, Some(1));
    assert_eq!(kafka.min_insync_replicas, Some(1));
}

#[test]
fn prometheus_loads_the_alert_rules_and_scrapes_the_example_service() {
    let c = compose();
    let p = &c["services"]["prometheus"];
    let command: Vec<&str> = p["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    let config_path = command
        .iter()
        .find_map(|a| a.strip_prefix("--config.file="))
        .expect("prometheus: --config.file");
    let (config, read_only) = on_host(p, config_path)
        .unwrap_or_else(|| panic!("prometheus: {config_path} is not mounted from the repository"));
    assert!(read_only, "prometheus: mount its configuration read-only");
    let expected = root().join("deploy/prometheus/prometheus.yml");
    assert!(
        same_file(&config, &expected),
        "prometheus reads {}, not {}",
        config.display(),
        expected.display()
    );
    assert!(
        p["extra_hosts"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|h| h.as_str() == Some("host.docker.internal:host-gateway")),
        "prometheus: host.docker.internal must reach the host"
    );

    let doc = yaml(&expected);
    // Relative rule files are relative to the configuration file, in the container and for
    // promtool run from the repository alike; both must find them.
    let config_dir = std::path::Path::new(config_path).parent().unwrap();
    let rules: Vec<&str> = doc["rule_files"]
        .as_sequence()
        .expect("rule_files")
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    assert!(rules.contains(&"credo-storage.rules.yml"), "{rules:?}");
    for rule in &rules {
        let in_container = config_dir.join(rule);
        let (host, _) = on_host(p, in_container.to_str().unwrap())
            .unwrap_or_else(|| panic!("{} is not mounted", in_container.display()));
        assert!(host.is_file(), "{}", host.display());
        assert!(expected.parent().unwrap().join(rule).is_file(), "{rule}");
    }

    let port = example_service_port();
    let target = format!("host.docker.internal:{port}");
    let jobs = doc["scrape_configs"].as_sequence().expect("scrape_configs");
    let scraped = jobs.iter().any(|job| {
        job["metrics_path"].as_str().is_none_or(|p| p == "/metrics")
            && job["static_configs"].as_sequence().is_some_and(|sc| {
                sc.iter().any(|s| {
                    s["targets"]
                        .as_sequence()
                        .is_some_and(|t| t.iter().any(|t| t.as_str() == Some(&target)))
                })
            })
    });
    assert!(
        scraped,
        "no scrape job of {} targets {target} (the example service's port)",
        expected.display()
    );
}

#[test]
fn grafana_shows_the_dashboards_from_prometheus_to_anonymous_viewers() {
    let c = compose();
    let g = &c["services"]["grafana"];
    let env = &g["environment"];
    let provisioning = env["GF_PATHS_PROVISIONING"]
        .as_str()
        .unwrap_or("/etc/grafana/provisioning");
    let (dir, read_only) = on_host(g, provisioning).expect("grafana: provisioning not mounted");
    assert!(read_only, "grafana: mount its provisioning read-only");

    // The data source is the compose Prometheus, by service name and container port.
    let datasources = yaml(&dir.join("datasources/prometheus.yml"));
    let prometheus = datasources["datasources"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|d| d["type"].as_str() == Some("prometheus"))
        .expect("a prometheus data source");
    assert_eq!(
        prometheus["url"].as_str(),
        Some("http://prometheus:9090"),
        "{prometheus:?}"
    );
    assert!(
        g["depends_on"]["prometheus"].is_mapping(),
        "grafana: depends_on prometheus"
    );

    // Every dashboard provider's folder is mounted and holds the dashboard.
    let providers = yaml(&dir.join("dashboards/credo-storage.yml"));
    let providers = providers["providers"].as_sequence().unwrap();
    assert!(!providers.is_empty());
    for provider in providers {
        let path = provider["options"]["path"].as_str().expect("options.path");
        let (host, _) = on_host(g, path)
            .unwrap_or_else(|| panic!("grafana: dashboards path {path} is not mounted"));
        assert!(host.is_dir(), "{}", host.display());
        assert!(
            same_file(&host, &root().join("deploy/grafana")),
            "{path} is {}, not deploy/grafana",
            host.display()
        );
        assert!(host.join("credo-storage.json").is_file());
    }
    if let Some(home) = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"].as_str() {
        let (host, _) = on_host(g, home).expect("home dashboard not mounted");
        assert!(host.is_file(), "{}", host.display());
    }

    // Anonymous viewers, and no usable well-known password: either a password comes from
    // the environment, or password logins are off altogether.
    assert_eq!(env["GF_AUTH_ANONYMOUS_ENABLED"].as_str(), Some("true"));
    assert_eq!(env["GF_AUTH_ANONYMOUS_ORG_ROLE"].as_str(), Some("Viewer"));
    match env["GF_SECURITY_ADMIN_PASSWORD"].as_str() {
        Some(password) => assert!(
            password.starts_with("${"),
            "grafana: a literal admin password in the compose file"
        ),
        None => {
            assert_eq!(env["GF_AUTH_DISABLE_LOGIN_FORM"].as_str(), Some("true"));
            assert_eq!(env["GF_AUTH_BASIC_ENABLED"].as_str(), Some("false"));
        }
    }
}

/// The dev Redis's service user has exactly the adapter's rule ([`credo_storage::redis::acl`]),
/// for the facade's key prefix, and the compose command really starts a Redis on which the
/// service, configured by the env file, runs its stores as that user while `FLUSHALL` and keys
/// of other prefixes are refused: the same arguments, given to a native `redis-server`.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_redis_runs_the_service_as_the_acl_user() {
    use credo_storage::Clock;
    use credo_storage::redis::{RedisStores, acl};
    let c = compose();
    let (user, rules) = redis_user(&c);
    let config = StorageConfig::from_vars(env_file()).unwrap();
    let redis = config.redis.as_ref().unwrap().redis_config().unwrap();
    let password = rules.iter().find_map(|r| r.strip_prefix('>')).unwrap();
    assert_eq!(user, acl::USER);
    assert_eq!(rules, acl::rules(password, &redis.key_prefix).unwrap());

    let Some(bin) = credo_testkit::system::which("redis-server") else {
        return credo_testkit::skip("redis-server not found (cargo xtask services up redis)")
            .unwrap_or(());
    };
    let port = credo_testkit::free_port();
    let mut child = std::process::Command::new(bin)
        .args(&command(&c["services"]["redis"])[1..])
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "redis did not start");
        assert!(child.try_wait().unwrap().is_none(), "redis-server exited");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _server = Kill(child);
    let mut redis = redis;
    redis.url = redis
        .url
        .expose_secret()
        .replace(
            &format!(
                "localhost:{}",
                published_port(&c["services"]["redis"], 6379)
            ),
            &format!("127.0.0.1:{port}"),
        )
        .into();
    let stores = RedisStores::connect(&redis, std::sync::Arc::new(credo_storage::SystemClock))
        .await
        .unwrap();
    let tenant = credo_storage::TenantId::new();
    stores
        .sessions()
        .revoke_token(
            tenant,
            "jti",
            credo_storage::SystemClock
                .now()
                .saturating_add(std::time::Duration::from_secs(60)),
        )
        .await
        .unwrap();
    assert!(
        stores
            .sessions()
            .is_token_revoked(tenant, "jti")
            .await
            .unwrap()
    );
    // The same user, by hand: what the rule leaves out is refused.
    let addr = format!("127.0.0.1:{port}");
    let raw =
        |args: &[&str]| credo_testkit::redis::resp(&addr, Some((user.as_str(), password)), args);
    for args in [
        &["FLUSHALL"][..],
        &["SET", "other:key", "x"],
        &["CONFIG", "SET", "save", ""],
    ] {
        let answer = raw(args);
        assert!(answer.starts_with("-NOPERM"), "{args:?}: {answer}");
    }
    stores.close().await;
}
