//! The shipped configuration files against the real binary: every setting
//! documented, timeouts longer than the daemon's own, and every probe,
//! healthcheck and start command run against a live daemon.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::kit::daemon::{Builder, Daemon, BIN};
use crate::kit::process::ok;
use crate::kit::shipped::{assert_env_file_documents, shipped};

fn read(relative: &str) -> String {
    std::fs::read_to_string(shipped(relative)).unwrap()
}

fn seconds(text: &str) -> Duration {
    humantime::parse_duration(text.trim()).unwrap_or_else(|_| panic!("not a duration: {text}"))
}

/// The daemon's defaults, as `check-config` reports them with no env set.
fn defaults() -> BTreeMap<String, String> {
    ok(std::process::Command::new(BIN)
        .arg("check-config")
        .env_clear())
    .lines()
    .filter_map(|line| line.split_once('='))
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .collect()
}

fn default_duration(name: &str) -> Duration {
    seconds(&defaults()[name])
}

/// Starts the real binary with `args` and `env` (port, files and state
/// moved into the test's own temp dir) and waits until it is ready.
fn start(args: &[&str], env: &[(String, String)]) -> Daemon {
    let mut builder = Builder::new();
    let dir = builder.dir().to_owned();
    for (key, value) in env {
        builder = builder.env(key, value);
    }
    builder = builder
        .env("PORT", "0")
        .env("HEALTH_BIND", "127.0.0.1")
        .env("HEALTH_FILE", dir.join("healthy"))
        .env("STATE_DIR", dir.join("state"));
    for arg in args {
        builder = builder.arg(arg);
    }
    let daemon = builder.spawn();
    daemon.wait_ready();
    daemon
}

/// A path must answer 200 on the live daemon.
fn assert_ok(daemon: &Daemon, path: &str, whose: &str) {
    assert!(
        daemon.wait_status(path, 200),
        "{whose} probes {path}, which never answered 200"
    );
}

#[test]
fn env_file_documents_every_variable() {
    assert_env_file_documents("run", "systemd/tradingbot.env", 10);
}

#[test]
fn unit_timeouts_outlast_the_daemons_own() {
    let unit = read("systemd/tradingbot.service");
    let setting = |name: &str| {
        let prefix = format!("{name}=");
        let value = unit
            .lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {name}= in the unit"));
        seconds(value)
    };
    assert!(setting("WatchdogSec") > default_duration("STALL_TIMEOUT"));
    assert!(setting("TimeoutStopSec") > default_duration("DRAIN_TIMEOUT"));
    assert!(setting("TimeoutStartSec") > default_duration("STARTUP_GRACE"));
    assert!(unit.contains("\nEnvironment=HEALTH_FILE=/run/tradingbot/healthy\n"));
    assert!(unit.contains("\nRuntimeDirectory=tradingbot\n"));
}

/// The HEALTHCHECK command of docker/Dockerfile, as a JSON array.
fn dockerfile_healthcheck() -> serde_json::Value {
    let dockerfile = read("docker/Dockerfile");
    let instruction = dockerfile
        .split("\nHEALTHCHECK ")
        .nth(1)
        .expect("no HEALTHCHECK in docker/Dockerfile");
    let command = instruction.split_once(" CMD ").unwrap().1;
    serde_json::from_str(command.lines().next().unwrap()).unwrap()
}

#[test]
fn compose_file_matches_the_image() {
    let compose: serde_json::Value = serde_yaml_ng::from_str(&read("docker/compose.yaml")).unwrap();
    let service = &compose["services"]["tradingbot"];
    let mut test = vec![serde_json::Value::from("CMD")];
    test.extend(dockerfile_healthcheck().as_array().unwrap().iter().cloned());
    assert_eq!(
        service["healthcheck"]["test"],
        serde_json::Value::from(test)
    );
    let drain = seconds(service["environment"]["DRAIN_TIMEOUT"].as_str().unwrap());
    assert!(seconds(service["stop_grace_period"].as_str().unwrap()) > drain);
    assert!(service["restart"].is_string());
    assert!(service["volumes"][0]
        .as_str()
        .unwrap()
        .ends_with(":/var/lib/tradingbot"));
}

#[test]
fn kubernetes_probes_hit_real_endpoints_on_the_declared_port() {
    let text = read("packaging/kubernetes/tradingbot.yaml");
    let documents: Vec<serde_json::Value> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| serde::Deserialize::deserialize(document).unwrap())
        .collect();
    let deployment = documents
        .iter()
        .find(|document| document["kind"] == "Deployment")
        .expect("no Deployment");
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 1, "one bot per account, never two");
    assert_eq!(spec["strategy"]["type"], "Recreate");
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let container = &pod["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );

    let env: Vec<(String, String)> = container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|var| {
            let value = var["value"].as_str().unwrap().to_owned();
            (var["name"].as_str().unwrap().to_owned(), value)
        })
        .collect();
    let var = |name: &str| {
        env.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
            .unwrap_or_else(|| panic!("{name} not set in the container"))
    };
    let grace = Duration::from_secs(pod["terminationGracePeriodSeconds"].as_u64().unwrap());
    assert!(grace > seconds(&var("DRAIN_TIMEOUT")));

    // The state dir and the health file's directory are writable mounts:
    // the root filesystem is read-only.
    let mounts: Vec<&str> = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|mount| mount["mountPath"].as_str().unwrap())
        .collect();
    assert!(mounts.contains(&var("STATE_DIR").as_str()), "{mounts:?}");
    let health_dir = std::path::Path::new(&var("HEALTH_FILE"))
        .parent()
        .unwrap()
        .to_owned();
    assert!(
        mounts.iter().any(|mount| health_dir.starts_with(mount)),
        "{mounts:?}"
    );

    let ports: BTreeMap<&str, u64> = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|port| {
            let number = port["containerPort"].as_u64().unwrap();
            (port["name"].as_str().unwrap(), number)
        })
        .collect();
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|arg| arg.as_str().unwrap())
        .collect();
    let daemon = start(&args, &env);
    let mut probed = Vec::new();
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        let http = &container[probe]["httpGet"];
        let port = match &http["port"] {
            serde_json::Value::String(name) => ports[name.as_str()],
            number => number.as_u64().unwrap(),
        };
        assert_eq!(
            port.to_string(),
            var("PORT"),
            "{probe} is not on the daemon's PORT"
        );
        let path = http["path"].as_str().unwrap();
        assert_ok(&daemon, path, probe);
        probed.push(path);
    }
    assert!(probed.contains(&"/livez") && probed.contains(&"/readyz"));
}

#[test]
fn paas_start_commands_serve_the_healthcheck_path() {
    let railway: toml::Table = read("packaging/railway.toml").parse().unwrap();
    let deploy = railway["deploy"].as_table().unwrap();
    assert_eq!(deploy["healthcheckPath"].as_str(), Some("/health"));
    assert_eq!(deploy["numReplicas"].as_integer(), Some(1));
    assert_eq!(deploy["overlapSeconds"].as_integer(), Some(0));
    let grace_period = deploy["drainingSeconds"].as_integer().unwrap() as u64;
    assert!(Duration::from_secs(grace_period) > default_duration("DRAIN_TIMEOUT"));
    let grace = deploy["healthcheckTimeout"].as_integer().unwrap() as u64;
    assert!(Duration::from_secs(grace) > default_duration("STARTUP_GRACE"));
    assert!(shipped(railway["build"]["dockerfilePath"].as_str().unwrap()).is_file());

    let start_command = deploy["startCommand"].as_str().unwrap();
    let mut words = start_command.split_whitespace();
    let entrypoint = words.next().unwrap();
    assert!(
        read("docker/Dockerfile").contains(&format!("ENTRYPOINT [\"{entrypoint}\"]")),
        "startCommand runs {entrypoint}, not the image's binary"
    );
    let daemon = start(&words.collect::<Vec<_>>(), &[]);
    assert_ok(&daemon, "/health", "railway.toml");

    let procfile = read("packaging/Procfile");
    let web = procfile
        .lines()
        .find_map(|line| line.strip_prefix("web: "))
        .expect("no web process in the Procfile: only web gets $PORT");
    let mut words = web.split_whitespace();
    assert_eq!(words.next(), Some("tradingbot"));
    let daemon = start(&words.collect::<Vec<_>>(), &[]);
    assert_ok(&daemon, "/health", "the Procfile");
}
