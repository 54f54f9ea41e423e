//! The dashboard's packaging beside the bot's: the systemd unit (static
//! checks; heavy/web_unit.rs runs it under systemd), the compose service,
//! the Kubernetes Deployment and Service, the Railway web service, each run
//! and probed; and the Grafana dashboard and the alert rules against a real
//! bot's series (heavy/web_packaging.rs runs systemd and promtool on them).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::kit::daemon::{stdin_bot, BIN};
use crate::kit::journal::signal_line;
use crate::kit::shipped::{assert_env_file_documents, shipped};
use crate::kit::wait::{wait_until, SOON};
use crate::kit::web::*;

fn read(relative: &str) -> String {
    std::fs::read_to_string(shipped(relative)).unwrap()
}

/// The value of `KEY=` lines in a unit, in order.
fn unit_values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn web_unit_is_sandboxed_and_writes_nowhere() {
    let unit = read("systemd/tradingbot-web.service");
    for writable in [
        "StateDirectory",
        "RuntimeDirectory",
        "LogsDirectory",
        "CacheDirectory",
        "ConfigurationDirectory",
        "ReadWritePaths",
    ] {
        assert!(
            unit_values(&unit, writable).is_empty(),
            "{writable}= in the unit"
        );
    }
    for (key, value) in [
        ("ExecStart", "/usr/bin/tradingbot web"),
        ("Type", "notify"),
        ("DynamicUser", "yes"),
        ("ProtectSystem", "strict"),
        ("ReadOnlyPaths", "/tmp /var/tmp /run /dev/shm"),
        ("MemoryDenyWriteExecute", "yes"),
    ] {
        assert_eq!(unit_values(&unit, key), [value], "{key}=");
    }
    for coupling in ["Requires", "BindsTo", "PartOf", "Requisite"] {
        assert!(
            unit_values(&unit, coupling).is_empty(),
            "{coupling}= couples it to a bot"
        );
    }
}

#[test]
fn web_env_file_documents_every_variable() {
    assert_env_file_documents("web", "systemd/tradingbot-web.env", 8);
    let toml: toml::Table = read("Cargo.toml").parse().unwrap();
    let assets = toml["package"]["metadata"]["deb"]["assets"].to_string();
    assert!(
        assets.contains("systemd/tradingbot-web.service"),
        "{assets}"
    );
    assert!(assets.contains("systemd/tradingbot-web.env"), "{assets}");
}

/// `${NAME:-}` in a compose value, filled from `vars`.
fn interpolate(value: &str, vars: &[(&str, &str)]) -> String {
    let mut text = value.to_owned();
    for (name, replacement) in vars {
        text = text.replace(&format!("${{{name}:-}}"), replacement);
    }
    text
}

#[test]
fn compose_runs_the_dashboard_as_its_own_service_probed_over_http() {
    let compose: Value = serde_yaml_ng::from_str(&read("docker/compose.yaml")).unwrap();
    let web = &compose["services"]["web"];
    let bot = &compose["services"]["tradingbot"];
    assert_eq!(web["command"], serde_json::json!(["web"]));
    assert_eq!(web["image"], bot["image"], "one image, two services");
    assert!(web["volumes"].is_null(), "the dashboard needs no volume");
    assert!(
        web["depends_on"].is_null(),
        "the dashboard must not pull a bot up or down"
    );
    assert_eq!(web["read_only"], true);
    let bots = web["environment"]["WEB_BOTS"].as_str().unwrap();
    assert_eq!(
        bots,
        format!(
            "tradingbot=http://tradingbot:{}",
            bot["environment"]["PORT"].as_str().unwrap()
        )
    );
    assert!(bot["environment"]["API_TOKEN"]
        .as_str()
        .unwrap()
        .contains("TRADINGBOT_API_TOKEN"));

    // Its own healthcheck, run against the real thing with its environment.
    let vars = [
        ("TRADINGBOT_API_TOKEN", "read-t0ken"),
        ("TRADINGBOT_WEB_TOKEN", "web-t0ken"),
    ];
    let port = web["environment"]["PORT"].as_str().unwrap();
    let test: Vec<&str> = web["healthcheck"]["test"]
        .as_array()
        .unwrap()
        .iter()
        .map(|word| word.as_str().unwrap())
        .collect();
    assert_eq!(&test[..2], ["CMD", "/usr/local/bin/tradingbot"]);
    assert_eq!(
        test[2..],
        ["health", "--addr", &format!("127.0.0.1:{port}")]
    );
    let env: Vec<(String, String)> = web["environment"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(key, value)| (key.clone(), interpolate(value.as_str().unwrap(), &vars)))
        .collect();
    let env: Vec<(&str, &str)> = env
        .iter()
        .filter(|(key, _)| key != "PORT")
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    let dashboard = Web::start(&[], &env);
    let probe = Command::new(BIN)
        .args(["health", "--addr", &format!("127.0.0.1:{}", dashboard.port)])
        .output()
        .unwrap();
    assert!(
        probe.status.success(),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    assert_eq!(
        dashboard.get("/api/fleet", &[]).0,
        401,
        "the compose token guards it"
    );

    // Without the token the service refuses to start, saying why.
    let refused = Command::new(BIN)
        .env_clear()
        .env("WEB_BOTS", bots)
        .arg("web")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let stopped = Command::new(BIN)
        .args(["health", "--addr", "127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(
        stopped.status.code(),
        Some(1),
        "the probe fails where nothing serves"
    );
}

#[test]
fn kubernetes_runs_the_dashboard_beside_the_bots_service() {
    let documents = |relative: &str| -> Vec<Value> {
        serde_yaml_ng::Deserializer::from_str(&read(relative))
            .map(|document| serde::Deserialize::deserialize(document).unwrap())
            .collect()
    };
    let bot_docs = documents("packaging/kubernetes/tradingbot.yaml");
    let web_docs = documents("packaging/kubernetes/tradingbot-web.yaml");
    let find = |docs: &[Value], kind: &str| {
        docs.iter()
            .find(|doc| doc["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind}"))
            .clone()
    };
    let (deployment, service) = (find(&web_docs, "Deployment"), find(&web_docs, "Service"));
    let bot_service = find(&bot_docs, "Service");
    assert!(!web_docs
        .iter()
        .any(|doc| doc["kind"] == "PersistentVolumeClaim"));
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["args"], serde_json::json!(["web"]));
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    assert_eq!(
        &service["spec"]["selector"], labels,
        "the Service selects the dashboard"
    );
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");
    let bot_labels = &find(&bot_docs, "Deployment")["spec"]["template"]["metadata"]["labels"];
    assert_eq!(&bot_service["spec"]["selector"], bot_labels);
    assert_ne!(
        labels, bot_labels,
        "the bot's Service must not select the dashboard"
    );

    let env: Vec<(String, String)> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|var| {
            (
                var["name"].as_str().unwrap().to_owned(),
                var["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let var = |name: &str| env.iter().find(|(key, _)| key == name).unwrap().1.clone();
    assert_eq!(
        var("WEB_BOTS"),
        format!(
            "tradingbot=http://{}:{}",
            bot_service["metadata"]["name"].as_str().unwrap(),
            bot_service["spec"]["ports"][0]["port"]
        )
    );
    let mount = container["volumeMounts"][0]["mountPath"].as_str().unwrap();
    assert!(
        var("WEB_TOKEN_FILE").starts_with(mount) && var("WEB_BOT_TOKENS_FILE").starts_with(mount)
    );
    assert_eq!(
        container["ports"][0]["containerPort"].to_string(),
        var("PORT")
    );

    // Run it with the manifest's environment (the Secret's files made
    // here) and hit its probes.
    let secret = tempfile::tempdir().unwrap();
    std::fs::write(secret.path().join("token"), "k8s-t0ken\n").unwrap();
    std::fs::write(secret.path().join("bot-tokens"), "tradingbot=read-t0ken\n").unwrap();
    let moved = |path: &str| {
        secret
            .path()
            .join(Path::new(path).file_name().unwrap())
            .to_string_lossy()
            .into_owned()
    };
    let env = [
        ("WEB_BOTS", var("WEB_BOTS")),
        ("WEB_TOKEN_FILE", moved(&var("WEB_TOKEN_FILE"))),
        ("WEB_BOT_TOKENS_FILE", moved(&var("WEB_BOT_TOKENS_FILE"))),
        ("LOG_FORMAT", var("LOG_FORMAT")),
    ];
    let env: Vec<(&str, &str)> = env
        .iter()
        .map(|(key, value)| (*key, value.as_str()))
        .collect();
    let dashboard = Web::start(&[], &env);
    for probe in ["readinessProbe", "livenessProbe"] {
        assert_eq!(container[probe]["httpGet"]["port"], "http", "{probe}");
        let path = container[probe]["httpGet"]["path"].as_str().unwrap();
        assert_eq!(dashboard.get(path, &[]).0, 200, "{probe} {path}");
    }
}

#[test]
fn railway_runs_web_and_worker_from_one_repository() {
    let worker: toml::Table = read("packaging/railway.toml").parse().unwrap();
    let web: toml::Table = read("packaging/railway.web.toml").parse().unwrap();
    assert_eq!(web["build"], worker["build"], "one image for both services");
    let deploy = web["deploy"].as_table().unwrap();
    assert_eq!(deploy["healthcheckPath"].as_str(), Some("/health"));
    let command: Vec<&str> = deploy["startCommand"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .collect();
    assert!(
        read("docker/Dockerfile").contains(&format!("ENTRYPOINT [\"{}\"]", command[0])),
        "startCommand runs {}, not the image's binary",
        command[0]
    );
    assert_eq!(command[1..], ["web"]);
    let bot = FakeBot::start(Mode::Good, None);
    let dashboard = Web::start(
        &[],
        &[
            ("WEB_BOTS", &format!("tradingbot={}", bot.url())),
            ("WEB_TOKEN", "railway-t0ken"),
        ],
    );
    assert_eq!(dashboard.get("/health", &[]).0, 200);
}

// ---- Prometheus and Grafana ----------------------------------------------------

/// Every `tradingbot_*` name in `text`, without a histogram's suffix.
fn series_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("tradingbot_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        let name = tail[..end].trim_end_matches("_bucket");
        names.insert(name.to_owned());
        rest = &tail[end..];
    }
    names
}

#[test]
fn grafana_and_alert_rules_use_only_series_a_real_bot_exports() {
    // A bot with fills, a reject and an alert destination (a refused
    // loopback port), so every family shows up in /metrics.
    // Nothing listens on port 9: every delivery is refused at once.
    let mut bot = stdin_bot()
        .env("NOTIFY_URLS", "json://127.0.0.1:9/alerts")
        .spawn();
    bot.wait_ready();
    bot.write_stdin(signal_line("m1", "BTC", "buy", 1.0, Some(100.0)).as_bytes());
    bot.write_stdin(b"{not json}\n");
    let metrics_url = format!("http://{}/metrics", bot.addr());
    let mut exported = String::new();
    let complete = wait_until(SOON, || {
        exported = get(&metrics_url, &[]).2;
        [
            "tradingbot_fills_total{",
            "tradingbot_component_status{",
            "tradingbot_notifications_dropped_total{",
        ]
        .iter()
        .all(|family| exported.contains(family))
    });
    assert!(complete, "families missing from /metrics:\n{exported}");
    let exported: BTreeSet<String> = exported
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect();

    let dashboard: Value =
        serde_json::from_str(&read("packaging/grafana/tradingbot.json")).unwrap();
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    assert!(exprs.len() >= 10, "{exprs:?}");
    let rules = read("packaging/prometheus/tradingbot.rules.yml");
    let used: BTreeSet<String> = exprs
        .iter()
        .flat_map(|expr| series_names(expr))
        .chain(series_names(&rules))
        .collect();
    for name in &used {
        assert!(
            exported.contains(name),
            "{name} is not a series of /metrics: {exported:?}"
        );
    }
    // The last-signal age comes first, as on every page.
    assert!(dashboard["panels"][1]["targets"][0]["expr"]
        .as_str()
        .unwrap()
        .contains("tradingbot_last_signal_timestamp_seconds"));
}
